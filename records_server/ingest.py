"""The EHR's MQTT side (DESIGN.md "MQTT"): takes device announcements and blood-pressure
readings from the broker and commits them, in batches, before acknowledging them.

    python -m records_server.ingest --broker mqtt://127.0.0.1:1883

One process per EHR. It keeps a persistent session (clean_session false, QoS 1, a fixed
client id), so readings published while it is down wait at the broker; it acknowledges a
message only after its batch is committed (paho's manual_ack), so a crash between the two
means a redelivery, which the unique (device, seq) turns into a no-op: nothing is lost and
nothing is stored twice.
"""

import argparse
import logging
import queue
import signal
import sys
import threading
import time
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app_support.migrations import SchemaMismatch, refuse

from .as_client import ASUnavailable, NotRegistered
from .db import utcnow
from .device_wire import QOS, SUBSCRIPTIONS, BadMessage, parse_announce, parse_reading, parse_topic
from .models import Device, Reading
from .pats import NotLinked
from .registration import register_one

log = logging.getLogger("records_server.ingest")

DEFAULT_CLIENT_ID = "uma-health-ehr-ingest"
# A batch closes at this many readings or after this long, whichever comes first: large
# enough to keep up with thousands of readings per second, short enough to feel live.
BATCH_SIZE = 1000
BATCH_SECONDS = 0.05
# Messages taken from the broker but not yet in a batch. When it is full, paho's network
# thread waits and the backlog stays at the broker: a few batches keep the writer busy,
# more would only cost memory (bench/ingest.py: 50,000 here took the RSS from 77 to 175 MiB).
INBOX_SIZE = 5 * BATCH_SIZE
RETRY_SECONDS = 1.0


def broker_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise ValueError(f"expected mqtt://host[:port], got {url!r}")
    return parts.hostname, parts.port or 1883


class Ingestor:
    """Subscribes, validates, stores in batches, then acknowledges."""

    def __init__(
        self, app, broker_url: str, client_id: str = DEFAULT_CLIENT_ID, username: str = "ehr"
    ):
        self.app = app
        self.host, self.port = broker_address(broker_url)
        self.inbox: queue.Queue[tuple[int, mqtt.MQTTMessage]] = queue.Queue(maxsize=INBOX_SIZE)
        self.stopping = threading.Event()
        self.connected = threading.Event()
        self.stored = 0
        self.dropped = 0
        # Bumped at every (re)connect, under the lock the writer holds while acknowledging.
        self._connection = 0
        self._ack_lock = threading.Lock()
        self.received = 0  # every message taken from the broker, redeliveries included
        self.redelivered = 0  # of which the broker flagged DUP (a second delivery)
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        # A named client: brokers such as amqtt keep messages for an offline persistent
        # session only when it is not anonymous (MQTT 3.1.2.4 leaves that to the broker).
        self.client.username_pw_set(username)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=5)
        self._writer = threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True)

    # -- MQTT callbacks (paho's network thread)

    def _on_connect(self, client, _userdata, _flags, reason_code, _properties):
        if reason_code.is_failure:
            log.warning("broker refused the connection: %s", reason_code)
            return
        # Subscribing here, not once at start, survives reconnects to a broker that lost
        # our session (an embedded broker that restarted).
        client.subscribe([(topic, QOS) for topic in SUBSCRIPTIONS])
        with self._ack_lock:
            self._connection += 1
        self.connected.set()
        log.info("connected to mqtt://%s:%d", self.host, self.port)

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties):
        self.connected.clear()
        if not self.stopping.is_set():
            log.warning("lost the broker (%s); reconnecting", reason_code)

    def _on_message(self, _client, _userdata, message: mqtt.MQTTMessage):
        self.received += 1
        self.redelivered += message.dup
        self.inbox.put((self._connection, message))

    # -- the writer thread: batches, commits, then acknowledges

    def _write_loop(self) -> None:
        while not (self.stopping.is_set() and self.inbox.empty()):
            batch = self._next_batch()
            if not batch:
                continue
            while True:
                try:
                    with self.app.app_context():
                        self._store([message for _connection, message in batch])
                    break
                except Exception:  # the database away, or a bug: keep the batch, unacknowledged
                    log.exception("could not store a batch of %d; retrying", len(batch))
                    self._session().rollback()
                    time.sleep(RETRY_SECONDS)
            self._acknowledge(batch)

    def _acknowledge(self, batch) -> None:
        """PUBACK what was committed, but only on the connection it came by. Message ids are
        per connection: an old id sent on a new connection would acknowledge a different,
        unstored message, which the broker would then drop. What came by an earlier
        connection is redelivered by the broker instead, and (device, seq) absorbs it."""
        with self._ack_lock:
            for connection, message in batch:
                if connection == self._connection:
                    self.client.ack(message.mid, message.qos)

    def _next_batch(self) -> list[tuple[int, mqtt.MQTTMessage]]:
        try:
            batch = [self.inbox.get(timeout=0.2)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + BATCH_SECONDS
        while len(batch) < BATCH_SIZE:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self.inbox.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def _session(self):
        return self.app.extensions["ehr_db"].scoped()

    def _store(self, batch: list[mqtt.MQTTMessage]) -> None:
        session = self._session()
        parsed = []
        for message in batch:
            try:
                device_id, what = parse_topic(message.topic)
                if what == "announce":
                    if message.payload:  # an empty retained message only clears the topic
                        self._announce(parse_announce(device_id, message.payload))
                else:
                    parsed.append(parse_reading(device_id, message.payload))
            except BadMessage as error:
                self.dropped += 1
                log.warning("dropped a message on %s: %s", message.topic, error)
        if not parsed:
            return
        devices = {
            d.device_id: d
            for d in session.scalars(
                select(Device).where(Device.device_id.in_({r.device_id for r in parsed}))
            )
        }
        rows = []
        for reading in parsed:
            device = devices.get(reading.device_id)
            if device is None or device.retired_at is not None:
                self.dropped += 1
                state = "unknown" if device is None else "retired"
                log.warning(
                    "dropped reading %d of %s device %s", reading.seq, state, reading.device_id
                )
                continue
            rows.append(
                {
                    "device_pk": device.id,
                    "seq": reading.seq,
                    "measured_at": reading.measured_at,
                    "systolic": reading.systolic,
                    "diastolic": reading.diastolic,
                    "pulse": reading.pulse,
                    "received_at": utcnow(),
                }
            )
        if rows:
            insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
            statement = insert(Reading).on_conflict_do_nothing(index_elements=["device_pk", "seq"])
            result = session.connection().execute(statement, rows)
            self.stored += result.rowcount if result.rowcount >= 0 else len(rows)
        session.commit()

    def _announce(self, announce) -> None:
        """A provisioned device's first announce makes its feed one of the patient's UMA
        resources, registered with her stored PAT, whether she is online or not."""
        session = self._session()
        device = session.scalar(select(Device).where(Device.device_id == announce.device_id))
        if device is None or device.retired_at is not None:
            self.dropped += 1
            log.warning("ignored the announce of unprovisioned device %s", announce.device_id)
            return
        if device.patient.username != announce.patient:
            self.dropped += 1
            log.warning(
                "ignored the announce of %s: it names patient %r, provisioned to %r",
                announce.device_id,
                announce.patient,
                device.patient.username,
            )
            return
        device.model, device.firmware = announce.model, announce.firmware
        first = device.announced_at is None
        device.announced_at = device.announced_at or utcnow()
        session.commit()
        if first or device.uma_resource_id is None:
            config = self.app.config
            try:
                resource_id = register_one(
                    session,
                    self.app.extensions["ehr_as"],
                    device,
                    config["PUBLIC_URL"],
                    config["PAT_REFRESH_MARGIN"],
                )
            except (ASUnavailable, NotLinked, NotRegistered) as error:
                # The readings are what matters here: they are stored either way, and the
                # feed is registered at the next start (or the next announce).
                session.rollback()
                log.warning(
                    "feed of %s not registered yet (%s); next start will", device.device_id, error
                )
                return
            if resource_id is None:
                log.info(
                    "device %s of %s online; its feed is registered when %s links the EHR",
                    device.device_id,
                    device.patient.username,
                    device.patient.username,
                )
            else:
                log.info(
                    "device %s of %s online; feed registered as %s",
                    device.device_id,
                    device.patient.username,
                    resource_id,
                )

    # -- running

    def start(self) -> "Ingestor":
        self._writer.start()
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        return self

    def stop(self) -> None:
        """Stop taking messages, store and acknowledge what arrived, then disconnect."""
        self.stopping.set()
        self._writer.join(timeout=30)
        self.client.disconnect()
        self.client.loop_stop()
        log.info(
            "ingestion stopped: %d stored, %d dropped, %d messages received, %d flagged DUP",
            self.stored,
            self.dropped,
            self.received,
            self.redelivered,
        )


def main(argv: list[str] | None = None) -> int:
    import os

    from . import create_app

    parser = argparse.ArgumentParser(prog="python -m records_server.ingest", description=__doc__)
    parser.add_argument(
        "--broker",
        default=os.environ.get("EHR_MQTT_URL")
        or os.environ.get("MQTT_URL")
        or "mqtt://127.0.0.1:1883",
    )
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        app = create_app({"SYNC_ON_START": False})
    except SchemaMismatch as error:  # the launcher migrates first; a bare start may not have
        return refuse(parser.prog, error)
    ingestor = Ingestor(app, args.broker, args.client_id).start()
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    done.wait()
    ingestor.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
