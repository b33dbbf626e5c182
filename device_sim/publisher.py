"""One device on MQTT (paho-mqtt 2): announce itself, publish readings at QoS 1, survive outages.

Delivery contract (why the code looks the way it does):

- A reading leaves this process's care only when the broker has acknowledged it: PUBACK,
  seen as `on_publish` with the reading's message id. Until then it is counted as *buffered*.
- Buffered readings live in two places. The backlog (a deque, oldest first) holds readings not
  yet handed to paho. At most `window` readings are handed to paho at a time ("in flight");
  paho keeps those and re-sends them (DUP) after a reconnect, so the broker may see one twice
  (allowed by QoS 1; `seq` lets the EHR drop the copy) but never zero times.
- The buffer is bounded: BUFFER_LIMIT readings in memory (about 28 hours at one reading a
  second, 69 days at one a minute). When it is full the *oldest* unsent reading is dropped
  and counted, because a clinician needs the newest numbers most. The buffer is not written
  to disk: readings still buffered when the process exits are reported, not kept.
- paho's own loop reconnects with exponential back-off (reconnect_min … reconnect_max) and
  `on_connect` re-announces, since a restarted broker may have lost the retained announce.
"""

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from device_sim import wire
from device_sim.readings import Reading, ReadingGenerator

log = logging.getLogger(__name__)

BUFFER_LIMIT = 100_000
# Readings handed to paho but not yet acknowledged. Enough to keep a LAN link busy; small enough
# that what paho re-sends after a reconnect is a few packets, not the whole backlog at once.
IN_FLIGHT_WINDOW = 20
KEEPALIVE_SECONDS = 30  # a silent half-open TCP link is noticed within 1.5 × this


@dataclass(frozen=True, slots=True)
class Device:
    """What a device announces about itself."""

    device_id: str
    patient: str
    model: str = wire.DEFAULT_MODEL
    firmware: str = wire.DEFAULT_FIRMWARE


@dataclass(frozen=True, slots=True)
class Stats:
    """Counters of one publisher. generated = acknowledged + buffered + dropped, always."""

    device_id: str
    generated: int
    sent: int  # readings handed to the MQTT client (each counted once, re-sends not)
    acknowledged: int  # PUBACKs received for readings
    buffered: int  # generated, not yet acknowledged: backlog + in flight
    dropped: int  # pushed out of a full buffer
    connects: int  # successful CONNACKs; more than one means the device reconnected


class DevicePublisher:
    """A blood-pressure monitor connected to one broker. Thread-safe; paho runs its own thread."""

    def __init__(
        self,
        device: Device,
        host: str,
        port: int,
        generator: ReadingGenerator,
        *,
        buffer_limit: int = BUFFER_LIMIT,
        window: int = IN_FLIGHT_WINDOW,
        reconnect_min: float = 1.0,
        reconnect_max: float = 30.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        if buffer_limit < 1 or window < 1:
            raise ValueError("buffer_limit and window must be at least 1")
        self.device = device
        self.host, self.port = host, port
        self.generator = generator
        self.buffer_limit = buffer_limit
        self.window = window
        self.clock = clock
        self._announce_topic = wire.announce_topic(device.device_id)
        self._readings_topic = wire.readings_topic(device.device_id)

        # One lock for every counter and queue below; never held while calling into paho,
        # because paho calls on_publish with its own message lock held (lock-order inversion).
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._backlog: deque[Reading] = deque()
        self._in_flight: dict[int, Reading] = {}  # paho message id → reading
        self._handing = 0  # popped from the backlog, publish() not yet returned
        self._early_acks: set[int] = set()  # PUBACKs that beat publish() returning its mid
        self._announce_mids: set[int] = set()
        self._connected = False
        self._closing = False
        self._generated = self._sent = self._acknowledged = self._dropped = self._connects = 0
        self._outage_logged = False

        # MQTT 3.1.1: the embedded amqtt broker speaks nothing newer. A clean session is
        # enough: unacknowledged readings are kept here and in paho, not in the broker.
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=device.device_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        self._client.reconnect_delay_set(min_delay=reconnect_min, max_delay=reconnect_max)
        # 0 = no paho-side limit: the window above already bounds what paho holds, and a paho
        # limit would make it queue messages in a second place with rules of its own.
        self._client.max_inflight_messages_set(0)
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> "DevicePublisher":
        """Connect in the background; a broker that is down now is retried with back-off."""
        self._client.connect_async(self.host, self.port, keepalive=KEEPALIVE_SECONDS)
        self._client.loop_start()
        return self

    def close(self, grace: float = 2.0) -> Stats:
        """Give in-flight readings up to `grace` seconds to be acknowledged, then disconnect."""
        deadline = time.monotonic() + grace
        with self._changed:
            while self._connected and self._buffered() and time.monotonic() < deadline:
                self._changed.wait(min(0.05, max(0.0, deadline - time.monotonic())))
            self._closing = True
        self._client.disconnect()
        self._client.loop_stop()
        return self.stats()

    def run(self, interval: float, count: int, stop: threading.Event, grace: float = 2.0) -> Stats:
        """Measure every `interval` s, `count` times (0 = until `stop`), then drain and close.

        With a count, the run ends only when every reading is acknowledged (or `stop` is set):
        a finished run with nothing buffered is the proof that nothing was lost.
        """
        self.start()
        try:
            next_at = time.monotonic()
            while not stop.is_set() and (count == 0 or self._generated < count):
                delay = next_at - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    break
                self.measure()
                next_at += interval
                # After a stall (a suspended laptop) carry on from now instead of firing a burst.
                next_at = max(next_at, time.monotonic() - interval)
            self.wait_drained(stop)
        finally:
            stats = self.close(grace)
        return stats

    # -- readings ----------------------------------------------------------------------------

    def measure(self) -> Reading:
        """Take one reading now, buffer it, and send it if the link allows."""
        reading = self.generator.measure(self.clock())
        with self._lock:
            self._generated += 1
            if self._buffered() >= self.buffer_limit and self._backlog:
                self._backlog.popleft()
                self._dropped += 1
                if self._dropped == 1 or self._dropped % 1000 == 0:
                    log.warning(
                        "%s: buffer full (%d readings); dropped %d oldest so far",
                        self.device.device_id,
                        self.buffer_limit,
                        self._dropped,
                    )
            self._backlog.append(reading)
        self._feed()
        return reading

    def wait_drained(
        self, stop: threading.Event | None = None, timeout: float | None = None
    ) -> bool:
        """Block until nothing is buffered (True), or until `stop` is set / `timeout` passes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while self._buffered():
                if stop is not None and stop.is_set():
                    return False
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                # Short waits so a signal's `stop` is noticed promptly.
                self._changed.wait(0.1)
        return True

    def wait_connected(self, timeout: float) -> bool:
        """Block until the broker accepted the connection (for tests and the CLI's log)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self._connected:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(0.1, remaining))
        return True

    def stats(self) -> Stats:
        with self._lock:
            return Stats(
                device_id=self.device.device_id,
                generated=self._generated,
                sent=self._sent,
                acknowledged=self._acknowledged,
                buffered=self._buffered(),
                dropped=self._dropped,
                connects=self._connects,
            )

    def _buffered(self) -> int:
        return len(self._backlog) + len(self._in_flight) + self._handing

    def _feed(self) -> None:
        """Hand backlog readings to paho while connected and the window has room."""
        while True:
            with self._lock:
                if (
                    not self._connected
                    or self._closing
                    or not self._backlog
                    or len(self._in_flight) + self._handing >= self.window
                ):
                    return
                reading = self._backlog.popleft()
                self._handing += 1
            try:
                # If the link drops meanwhile, paho keeps the QoS 1 message and sends it on
                # reconnect (info.rc is then MQTT_ERR_NO_CONN): it is in flight either way.
                info = self._client.publish(
                    self._readings_topic, wire.reading_payload(reading), qos=wire.QOS
                )
            except Exception:
                with self._lock:
                    self._handing -= 1
                    self._backlog.appendleft(reading)
                raise
            with self._changed:
                self._handing -= 1
                self._sent += 1
                if info.mid in self._early_acks:
                    self._early_acks.discard(info.mid)
                    self._acknowledged += 1
                    self._changed.notify_all()
                else:
                    self._in_flight[info.mid] = reading

    # -- paho callbacks (paho's network thread) -------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("%s: broker refused the connection: %s", self.device.device_id, reason_code)
            return
        with self._changed:
            self._connected = True
            self._connects += 1
            self._outage_logged = False
            buffered = self._buffered()
            self._changed.notify_all()
        log.info(
            "%s: connected to mqtt://%s:%d (%d readings buffered)",
            self.device.device_id,
            self.host,
            self.port,
            buffered,
        )
        # Announce on every connect: the broker may have restarted and lost its retained copy.
        info = client.publish(
            self._announce_topic,
            wire.announce_payload(
                self.device.device_id, self.device.patient, self.device.model, self.device.firmware
            ),
            qos=wire.QOS,
            retain=True,
        )
        with self._lock:
            self._announce_mids.add(info.mid)
        # The backlog is not fed here but when the announce's PUBACK arrives (on_publish): paho
        # re-sends the previous connection's in-flight readings right after this callback, and
        # feeding later keeps the backlog behind them, in seq order.

    def _on_connect_fail(self, client, userdata) -> None:
        # paho retries by itself; say so once per outage rather than on every attempt.
        if not self._outage_logged:
            self._outage_logged = True
            log.warning(
                "%s: broker mqtt://%s:%d unreachable; buffering readings and retrying",
                self.device.device_id,
                self.host,
                self.port,
            )

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._changed:
            was_connected, self._connected = self._connected, False
            closing = self._closing
            self._changed.notify_all()
        if was_connected and not closing:
            self._outage_logged = True
            log.warning(
                "%s: lost the broker (%s); buffering readings and reconnecting",
                self.device.device_id,
                reason_code,
            )

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        # The broker acknowledged message `mid` (PUBACK, MQTT 3.1.1 §4.3.2).
        with self._changed:
            if mid in self._announce_mids:
                self._announce_mids.discard(mid)
            elif self._in_flight.pop(mid, None) is not None:
                self._acknowledged += 1
            else:
                self._early_acks.add(mid)
            self._changed.notify_all()
        self._feed()
