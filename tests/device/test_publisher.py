"""The publisher against real brokers: the embedded amqtt one and the local Mosquitto.

Delivery is checked from the outside: a real paho subscriber, and (amqtt) a broker plugin that
records every reading PUBLISH read off the wire before the broker acknowledged it.
"""

import json
import re
import threading
import time

import pytest

from device_sim.publisher import Device, DevicePublisher
from device_sim.readings import ReadingGenerator
from tests.conftest import free_port
from tests.device.mqtt_helpers import WAIT, WIRE_RECORDER, PubackFilter
from uma_demo.broker import EmbeddedBroker

READING_KEYS = {"seq", "measured_at", "systolic", "diastolic", "pulse", "unit"}
RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def make_publisher(device_id, host, port, **kwargs) -> DevicePublisher:
    # Fast reconnects keep the suite quick; the defaults (1 s … 30 s) suit a real device.
    kwargs.setdefault("reconnect_min", 0.05)
    kwargs.setdefault("reconnect_max", 0.2)
    return DevicePublisher(
        Device(device_id, "alice"), host, port, ReadingGenerator(seed=1), **kwargs
    )


def eventually(predicate, timeout: float = WAIT) -> bool:
    """Poll until `predicate()` holds; False if it never did (a ceiling, not a timing claim)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def recorded_seqs(broker: EmbeddedBroker) -> list[int]:
    recorder = broker.broker.plugins_manager.get_plugin("WireRecorder")
    return [json.loads(payload)["seq"] for _, payload, _ in recorder.published]


class Run:
    """DevicePublisher.run in a thread, so a test can act on the broker meanwhile."""

    def __init__(self, publisher: DevicePublisher, interval: float, count: int):
        self.publisher = publisher
        self.stop = threading.Event()
        self.stats = None
        self._thread = threading.Thread(
            target=self._run, args=(interval, count), name="publisher-run", daemon=True
        )
        self._thread.start()

    def _run(self, interval, count):
        self.stats = self.publisher.run(interval, count, self.stop)

    def join(self, timeout: float = WAIT) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def halt(self):
        self.stop.set()
        self._thread.join(WAIT)


def test_announce_retained_and_every_reading_delivered(broker_address, device_id, subscribe):
    """N readings published = N received, seq 1..N, DESIGN.md shapes; announce is retained."""
    host, port = broker_address
    n = 30
    subscriber = subscribe(host, port, device_id)

    stats = make_publisher(device_id, host, port).run(
        interval=0.005, count=n, stop=threading.Event()
    )

    assert (stats.generated, stats.sent, stats.acknowledged) == (n, n, n)
    assert (stats.buffered, stats.dropped, stats.connects) == (0, 0, 1)
    assert subscriber.wait_for(lambda: len(subscriber.readings()) >= n)
    readings = subscriber.readings()
    assert sorted(r["seq"] for r in readings) == list(range(1, n + 1))
    for r in readings:
        assert set(r) == READING_KEYS
        assert r["unit"] == "mm[Hg]"
        assert RFC3339_UTC.fullmatch(r["measured_at"])
        assert all(isinstance(r[k], int) for k in ("systolic", "diastolic", "pulse"))
        assert r["diastolic"] < r["systolic"]

    # A subscriber arriving after the device is told about it: the announce is retained.
    late = subscribe(host, port, device_id)
    assert late.wait_for(lambda: late.announces())
    announce = late.announces()[0]
    assert announce.retain
    assert announce.topic == f"ehr/devices/{device_id}/announce"
    assert announce.json() == {
        "device_id": device_id,
        "patient": "alice",
        "kind": "blood_pressure",
        "model": "UMA-Sim BP-200",
        "firmware": "1.0.0",
    }
    assert late.readings() == []  # readings are not retained


def test_broker_restart_mid_stream_loses_no_reading(amqtt_broker, device_id, subscribe, capsys):
    """Stop the embedded broker mid-stream, start it again on the same port: the device
    buffers, reconnects, re-announces, and every seq 1..N reaches a broker exactly as often
    as QoS 1 allows (at least once; duplicates counted and reported)."""
    host, port = amqtt_broker.host, amqtt_broker.port
    n = 200
    subscriber = subscribe(host, port, device_id)
    run = Run(make_publisher(device_id, host, port), interval=0.005, count=n)
    try:
        assert subscriber.wait_for(lambda: len(subscriber.readings()) >= 20)
        first_recorder = amqtt_broker.broker.plugins_manager.get_plugin("WireRecorder")
        amqtt_broker.stop()
        # The device keeps measuring while the broker is away: its buffer grows.
        assert eventually(lambda: run.publisher.stats().buffered >= 20)
        assert run.publisher.stats().generated < n, "outage must fall inside the run"
        amqtt_broker.start()
        assert run.join(), "the device never drained its buffer after the restart"
    finally:
        run.halt()

    stats = run.stats
    assert (stats.acknowledged, stats.buffered, stats.dropped) == (n, 0, 0)
    # ≥ 2, not == 2: a reconnect may still reach the old broker while it is shutting down.
    assert stats.connects >= 2
    first = [json.loads(p)["seq"] for _, p, _ in first_recorder.published]
    seen = first + recorded_seqs(amqtt_broker)
    assert set(seen) == set(range(1, n + 1)), "a reading never reached the broker"
    duplicates = len(seen) - n  # QoS 1 re-sends of readings whose PUBACK was lost in the stop

    # The subscriber reconnects too and sees the device re-announce itself on the new broker
    # (live, or as the retained copy on resubscribing: either way after the restart).
    assert subscriber.wait_resubscribed(2)
    assert subscriber.wait_for(lambda: len(subscriber.announces()) >= 2)
    # What a plain subscriber saw is reported, not asserted: amqtt drops its queues and
    # sessions on shutdown, and readings re-sent before the subscriber is back reach no one.
    received = [r["seq"] for r in subscriber.readings()]
    with capsys.disabled():
        print(
            f"\n[broker restart] n={n} on_the_wire={len(seen)} duplicates={duplicates} "
            f"subscriber_received={len(received)} subscriber_unique={len(set(received))}"
        )


def test_mosquitto_restart_persistent_subscriber_misses_no_reading(
    private_mosquitto, device_id, subscribe, capsys
):
    """The same fault on Mosquitto with persistence, counted where the EHR would count: a
    subscriber with a persistent session (clean_session=False, QoS 1) gets every seq 1..N,
    including readings the device re-sent while the subscriber was still reconnecting."""
    broker = private_mosquitto
    n = 200
    subscriber = subscribe(
        broker.host, broker.port, device_id, client_id=f"ehr-{device_id}", clean_session=False
    )
    run = Run(make_publisher(device_id, broker.host, broker.port), interval=0.005, count=n)
    try:
        assert subscriber.wait_for(lambda: len(subscriber.readings()) >= 20)
        broker.stop()
        assert eventually(lambda: run.publisher.stats().buffered >= 20)
        assert run.publisher.stats().generated < n, "outage must fall inside the run"
        broker.start()
        assert run.join(), "the device never drained its buffer after the restart"
    finally:
        run.halt()

    stats = run.stats
    assert (stats.acknowledged, stats.buffered, stats.dropped) == (n, 0, 0)
    assert stats.connects >= 2
    assert subscriber.wait_for(
        lambda: {r["seq"] for r in subscriber.readings()} == set(range(1, n + 1))
    ), "the persistent subscriber missed a reading"
    received = [r["seq"] for r in subscriber.readings()]
    with capsys.disabled():
        print(
            f"\n[mosquitto restart] n={n} subscriber_received={len(received)} "
            f"duplicates={len(received) - n}"
        )


def test_a_reading_stays_buffered_until_its_puback_and_is_resent(amqtt_broker, device_id):
    """The broker has the readings but its PUBACKs are lost: the device keeps them buffered,
    and after the connection is re-made paho re-sends them (DUP); the copies are countable."""
    proxy = PubackFilter(amqtt_broker.port)
    publisher = make_publisher(device_id, "127.0.0.1", proxy.port).start()
    recorder = amqtt_broker.broker.plugins_manager.get_plugin("WireRecorder")
    try:
        assert publisher.wait_connected(WAIT)
        proxy.drop_pubacks = True
        for _ in range(5):
            publisher.measure()
        assert eventually(lambda: len(recorder.published) == 5 and proxy.dropped >= 5)
        stats = publisher.stats()
        assert (stats.sent, stats.acknowledged, stats.buffered) == (5, 0, 5)

        proxy.drop_pubacks = False
        proxy.cut_connections()
        assert publisher.wait_drained(timeout=WAIT)
        stats = publisher.close()
    finally:
        publisher.close(grace=0)
        proxy.close()

    assert (stats.sent, stats.acknowledged, stats.buffered) == (5, 5, 0)
    assert stats.connects >= 2
    seqs = [json.loads(payload)["seq"] for _, payload, _ in recorder.published]
    dup_flags = [dup for _, _, dup in recorder.published]
    assert sorted(seqs) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]  # each reading exactly twice
    assert dup_flags[:5] == [False] * 5 and dup_flags[5:] == [True] * 5


def test_device_started_before_the_broker_buffers_then_delivers(device_id):
    """Broker down at start: readings wait in the buffer, then all go out once it is up."""
    port = free_port()
    publisher = make_publisher(device_id, "127.0.0.1", port).start()
    broker = EmbeddedBroker(port=port, plugins={WIRE_RECORDER: {}})
    try:
        for _ in range(5):
            publisher.measure()
        assert publisher.stats().buffered == 5
        broker.start()
        assert publisher.wait_drained(timeout=WAIT)
        stats = publisher.close()
        assert (stats.sent, stats.acknowledged, stats.buffered) == (5, 5, 0)
        assert sorted(set(recorded_seqs(broker))) == [1, 2, 3, 4, 5]
    finally:
        publisher.close(grace=0)
        broker.stop()


def test_full_buffer_drops_the_oldest_and_counts_it(device_id):
    """The buffer is bounded; when full, the oldest unsent reading goes (newest matter most)."""
    port = free_port()
    publisher = make_publisher(device_id, "127.0.0.1", port, buffer_limit=5).start()
    broker = EmbeddedBroker(port=port, plugins={WIRE_RECORDER: {}})
    try:
        for _ in range(8):
            publisher.measure()
        stats = publisher.stats()
        assert (stats.generated, stats.buffered, stats.dropped, stats.sent) == (8, 5, 3, 0)
        broker.start()
        assert publisher.wait_drained(timeout=WAIT)
        assert sorted(set(recorded_seqs(broker))) == [4, 5, 6, 7, 8]
        stats = publisher.close()
        assert stats.generated == stats.acknowledged + stats.buffered + stats.dropped
    finally:
        publisher.close(grace=0)
        broker.stop()


def test_window_bounds_what_is_in_flight(broker_address, device_id, subscribe):
    """A burst larger than the in-flight window still arrives whole and in seq order."""
    host, port = broker_address
    subscriber = subscribe(host, port, device_id)
    publisher = make_publisher(device_id, host, port, window=3).start()
    try:
        assert publisher.wait_connected(WAIT)
        for _ in range(50):
            publisher.measure()
        assert publisher.wait_drained(timeout=WAIT)
    finally:
        stats = publisher.close()
    assert (stats.sent, stats.acknowledged) == (50, 50)
    assert subscriber.wait_for(lambda: len(subscriber.readings()) >= 50)
    assert [r["seq"] for r in subscriber.readings()] == list(range(1, 51))


@pytest.mark.parametrize("kwargs", [{"buffer_limit": 0}, {"window": 0}])
def test_limits_must_be_positive(kwargs):
    with pytest.raises(ValueError):
        make_publisher("bp-x", "127.0.0.1", 1, **kwargs)
