"""Test-side MQTT tools: a recording subscriber, a broker plugin that witnesses the wire."""

import contextlib
import getpass
import json
import shutil
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from amqtt.mqtt.publish import PublishPacket
from amqtt.plugins.base import BasePlugin
from paho.mqtt.enums import CallbackAPIVersion

from uma_demo.broker import wait_until_accepting

WAIT = 15.0  # generous ceilings for "until this has happened"; never asserted as durations
MOSQUITTO = ("127.0.0.1", 1883)  # the shared Mosquitto CI runs; tests never restart it


def listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def shared_mosquitto() -> tuple[str, int]:
    """The Mosquitto on 127.0.0.1:1883, which the Mosquitto legs of the tests use."""
    from tests.conftest import unavailable

    if not listening(*MOSQUITTO):
        unavailable("Mosquitto leg: nothing listens on 127.0.0.1:1883 (CI runs one there)")
    return MOSQUITTO


def mosquitto_binary() -> str:
    """The mosquitto executable, for a broker of a test's own (Debian package mosquitto)."""
    from tests.conftest import unavailable

    binary = shutil.which("mosquitto") or shutil.which(
        "mosquitto", path="/usr/sbin:/usr/local/sbin"
    )
    if binary is None:
        unavailable("no mosquitto executable installed (Debian package mosquitto)")
    return binary


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> dict:
        return json.loads(self.payload)


class Subscriber:
    """A real paho client on `ehr/devices/{device_id}/#` (QoS 1) that keeps what it receives."""

    def __init__(
        self,
        host: str,
        port: int,
        device_id: str,
        *,
        client_id: str | None = None,
        clean_session: bool = True,
    ):
        self.host, self.port, self.device_id = host, port, device_id
        self.messages: list[Received] = []
        self._changed = threading.Condition()
        self._subscriptions = 0
        # clean_session=False: a persistent session; the broker queues QoS 1 messages for us
        # while we are away (and, with persistence, across its own restart).
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-sub-{uuid.uuid4().hex[:12]}",
            protocol=mqtt.MQTTv311,
            clean_session=clean_session,
        )
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def start(self) -> "Subscriber":
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        assert self.wait_for(lambda: self._subscriptions >= 1), "no SUBACK"
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def wait_for(self, predicate, timeout: float = WAIT) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.1))
        return True

    def wait_resubscribed(self, count: int) -> bool:
        """True once the subscription was acknowledged `count` times (i.e. after reconnects)."""
        return self.wait_for(lambda: self._subscriptions >= count)

    def readings(self) -> list[dict]:
        with self._changed:
            return [m.json() for m in self.messages if m.topic.endswith("/readings")]

    def announces(self) -> list[Received]:
        with self._changed:
            return [m for m in self.messages if m.topic.endswith("/announce") and m.payload]

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            return
        client.subscribe(f"ehr/devices/{self.device_id}/#", qos=1)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        if any(rc.is_failure for rc in reason_codes):
            return
        with self._changed:
            self._subscriptions += 1
            self._changed.notify_all()

    def _on_message(self, client, userdata, message):
        with self._changed:
            self.messages.append(Received(message.topic, bytes(message.payload), message.retain))
            self._changed.notify_all()


def clear_retained(host: str, port: int, device_id: str) -> None:
    """Publish the empty retained message that deletes a device's announce (MQTT 3.3.1.3)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    try:
        client.connect(host, port, keepalive=10)
    except OSError:
        return  # the broker is gone, and its retained messages with it
    client.loop_start()
    try:
        info = client.publish(f"ehr/devices/{device_id}/announce", b"", qos=1, retain=True)
        info.wait_for_publish(timeout=5)
    finally:
        client.disconnect()
        client.loop_stop()


class WireRecorder(BasePlugin):
    """amqtt plugin: every reading PUBLISH the broker reads off the wire, before it PUBACKs.

    amqtt fires `mqtt_packet_received` for a packet before handling it (and so before the
    PUBACK), and its shutdown waits for fired events: whatever a device saw acknowledged is
    in `published`, even if the broker then stops before forwarding it to a subscriber.
    """

    def __init__(self, context):
        super().__init__(context)
        self.published: list[tuple[str, bytes, bool]] = []  # (topic, payload, dup flag)

    async def on_mqtt_packet_received(self, *, packet, session=None) -> None:
        if isinstance(packet, PublishPacket) and (packet.topic_name or "").endswith("/readings"):
            self.published.append((packet.topic_name, bytes(packet.data), packet.dup_flag))


WIRE_RECORDER = f"{WireRecorder.__module__}.{WireRecorder.__qualname__}"


class PubackFilter:
    """A TCP proxy between a client and a broker that can swallow the broker's PUBACKs.

    Lets a test stage "the broker got the reading but the device never heard back", the case
    QoS 1 answers with a re-send (DUP) after the connection is re-made.
    """

    PUBACK = 0x40

    def __init__(self, upstream_port: int, host: str = "127.0.0.1"):
        self.host, self.upstream_port = host, upstream_port
        self.drop_pubacks = False
        self.dropped = 0
        self._listener = socket.create_server((host, 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="puback-filter").start()

    def cut_connections(self) -> None:
        """Drop every proxied connection (both ends see the TCP connection die)."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.cut_connections()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection((self.host, self.upstream_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_broker: bool) -> None:
        try:
            while True:
                packet = _read_packet(source)
                if packet is None:
                    break
                if from_broker and self.drop_pubacks and packet[0] & 0xF0 == self.PUBACK:
                    self.dropped += 1
                    continue
                sink.sendall(packet)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def _read_packet(sock: socket.socket) -> bytes | None:
    """One whole MQTT control packet (fixed header + remaining length, MQTT 3.1.1 §2.2)."""
    header = _read_exactly(sock, 1)
    if header is None:
        return None
    length_bytes, length, multiplier = b"", 0, 1
    while True:
        byte = _read_exactly(sock, 1)
        if byte is None:
            return None
        length_bytes += byte
        length += (byte[0] & 0x7F) * multiplier
        multiplier *= 128
        if not byte[0] & 0x80:
            break
    body = _read_exactly(sock, length) if length else b""
    if body is None:
        return None
    return header + length_bytes + body


def _read_exactly(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


class PrivateMosquitto:
    """A Mosquitto of our own on a free port, with persistence, that a test may restart.

    The shared Mosquitto on :1883 must never be restarted by a test; this one is ours.
    """

    def __init__(self, binary: str, directory: Path, port: int):
        self.binary, self.host, self.port = binary, "127.0.0.1", port
        self.config = directory / "mosquitto.conf"
        self.config.write_text(
            f"listener {port} 127.0.0.1\n"
            "allow_anonymous true\n"
            # Run as root, mosquitto would drop to user "mosquitto", who cannot write here.
            f"user {getpass.getuser()}\n"
            # Sessions and queued messages survive a restart: written out on SIGTERM.
            "persistence true\n"
            f"persistence_location {directory}/\n"
            # No queue limit: the default 1000 drops (silently) what a slow session misses.
            "max_queued_messages 0\n"
        )
        self.saved = directory / "mosquitto.db"
        self.url = f"mqtt://{self.host}:{port}"
        self._process: subprocess.Popen | None = None

    def start(self) -> "PrivateMosquitto":
        self._process = subprocess.Popen(
            [self.binary, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until_accepting(self.host, self.port)
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()  # SIGTERM: a clean exit that saves the persistence file
            try:
                self._process.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            assert self.saved.exists(), "Mosquitto saved no sessions on SIGTERM"
        self._process = None
