"""Device readings over MQTT into the EHR, through a real broker (the embedded amqtt and
Mosquitto), with the real simulator, the real EHR and the real AS (DESIGN.md "MQTT")."""

import json
import logging
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from contextlib import closing

import paho.mqtt.client as mqtt
import pytest
import requests
from sqlalchemy import func, select

from records_server.device_wire import SYSTOLIC
from records_server.ingest import Ingestor
from records_server.models import Device, Reading
from records_server.registration import FEED_TYPE
from records_server.seed import provision
from tests.authz.conftest import bearer
from tests.authz.test_uma_grant import share
from tests.conftest import free_port
from tests.device.mqtt_helpers import (
    PrivateMosquitto,
    listening,
    mosquitto_binary,
    shared_mosquitto,
)
from tests.records.test_ehr_protection import challenge_of, registered_at_as, rpt_for
from uma_demo.broker import EmbeddedBroker

pytestmark = pytest.mark.live
READING = (
    b'{"seq":1,"measured_at":"2026-11-23T08:00:00Z","systolic":130,"diastolic":85,'
    b'"pulse":70,"unit":"mm[Hg]"}'
)


@pytest.fixture(params=["amqtt", "mosquitto"])
def broker_url(request):
    if request.param == "mosquitto":
        host, port = shared_mosquitto()
        yield f"mqtt://{host}:{port}"
        return
    broker = EmbeddedBroker(port=free_port()).start()
    yield broker.url
    broker.stop()


@pytest.fixture
def device_id(apps):
    """A monitor provisioned to Alice, unique per test (tests share the local Mosquitto)."""
    device_id = f"bp-test-{uuid.uuid4().hex[:10]}"
    with apps.ehr_app.app_context():
        session = apps.ehr_session()
        provision(session, device_id, "alice")
        session.commit()
    yield device_id


@pytest.fixture
def ingest(apps, broker_url):
    """start() → a running Ingestor with a client id of this test's own."""
    client_id = f"ehr-ingest-{uuid.uuid4().hex[:8]}"
    running = []

    def start(url=broker_url):
        ingestor = Ingestor(apps.ehr_app, url, client_id).start()
        assert ingestor.connected.wait(10), "the ingestor did not connect"
        running.append(ingestor)
        return ingestor

    yield start
    for ingestor in running:
        if not ingestor.stopping.is_set():
            ingestor.stop()


def simulate(broker_url, device_id, count, interval=0.002, wait=True):
    """The real simulator, as a person runs it."""
    command = [
        sys.executable,
        "-m",
        "device_sim",
        "--device-id",
        device_id,
        "--patient",
        "alice",
        "--broker",
        broker_url,
        "--count",
        str(count),
        "--interval",
        str(interval),
        "--seed",
        "7",
        "--first-seq",
        "1",
        "--quiet",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if wait:
        finish(process)
    return process


def finish(process: subprocess.Popen) -> None:
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err


def stored(apps, device_id) -> list[int]:
    session = apps.ehr_session()
    try:
        return list(
            session.scalars(select(Reading.seq).join(Device).where(Device.device_id == device_id))
        )
    finally:
        session.close()


def wait_for(predicate, timeout=30.0, what=""):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def publish_raw(broker_url, messages):
    host, port = broker_url.removeprefix("mqtt://").split(":")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.connect(host, int(port))
    client.loop_start()
    for topic, payload in messages:
        client.publish(topic, payload, qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def feed_id(apps, device_id):
    session = apps.ehr_session()
    try:
        return session.scalar(select(Device.uma_resource_id).where(Device.device_id == device_id))
    finally:
        session.close()


def test_the_monitor_becomes_alices_feed_and_every_reading_is_stored(
    apps, linked, broker_url, device_id, ingest
):
    """N published = N stored; the feed is registered at the AS with Alice's stored PAT while
    she is away, and reads as FHIR Observations under UMA."""
    linked.post(
        apps.ehr_url + "/logout",
        data={"csrf_token": linked.form_token(linked.get(apps.ehr_url + "/").text)},
    )
    ingest()
    simulate(broker_url, device_id, 60)
    wait_for(lambda: len(stored(apps, device_id)) == 60)
    assert sorted(stored(apps, device_id)) == list(range(1, 61))

    resource_id = feed_id(apps, device_id)
    assert resource_id in registered_at_as(apps)
    description = requests.get(
        f"{apps.as_server.url}/uma/resource_set/{resource_id}",
        headers=bearer(_pat(apps)),
        timeout=5,
    ).json()
    assert description["type"] == FEED_TYPE and description["resource_scopes"] == ["read"]

    url = f"{apps.ehr_url}/api/patients/alice/devices/{device_id}/readings?limit=1000"
    share(apps.as_app.test_client(), {"type": "user", "username": "carol"}, [resource_id])
    ticket = challenge_of(requests.get(url, timeout=5))["ticket"]
    rpt = rpt_for(apps, ticket, "carol").json["access_token"]
    bundle = requests.get(url, headers=bearer(rpt), timeout=5).json()
    assert bundle["total"] == 60
    first = bundle["entry"][0]["resource"]
    assert first["code"]["coding"][0]["code"] == "85354-9"
    codes = [c["code"]["coding"][0]["code"] for c in first["component"]]
    assert codes == ["8480-6", "8462-4", "8867-4"]
    systolic, diastolic = (c["valueQuantity"]["value"] for c in first["component"][:2])
    assert diastolic < systolic and SYSTOLIC[0] <= systolic <= SYSTOLIC[1]

    since = bundle["entry"][49]["resource"]["effectiveDateTime"]
    later = requests.get(url + f"&since={since}", headers=bearer(rpt), timeout=5).json()
    assert later["total"] <= 10
    directory = requests.get(f"{apps.ehr_url}/api/patients/alice", timeout=5).json()
    assert any(r.get("device_id") == device_id for r in directory["resources"])


def test_malformed_payloads_and_unknown_devices_are_dropped_with_a_log_line_each(
    apps, linked, broker_url, device_id, ingest, caplog
):
    good = READING
    bad = [
        b"not json",
        b"[]",
        b'{"seq":2}',
        good.replace(b'"diastolic":85', b'"diastolic":135'),
        good.replace(b'"seq":1', b'"seq":-1'),
        good.replace(b"08:00:00Z", b"08:00:00"),
        good.replace(b"mm[Hg]", b"kPa"),
        good.replace(b'"systolic":130', b'"systolic":"130"'),
        b"x" * 10_000,
    ]
    topic = f"ehr/devices/{device_id}/readings"
    stranger = f"ehr/devices/bp-stranger-{uuid.uuid4().hex[:6]}/readings"
    caplog.set_level(logging.WARNING, logger="records_server.ingest")
    ingest()
    publish_raw(broker_url, [(topic, p) for p in bad] + [(stranger, good), (topic, good)])
    wait_for(lambda: stored(apps, device_id) == [1])
    dropped = [
        r for r in caplog.records if r.name == "records_server.ingest" and "dropped" in r.message
    ]
    assert len(dropped) == len(bad) + 1
    session = apps.ehr_session()
    assert session.scalar(select(func.count(Reading.id))) == 1
    session.close()


def test_a_redelivered_reading_is_stored_once(apps, linked, broker_url, device_id, ingest):
    reading = READING.replace(b'"seq":1', b'"seq":5')
    topic = f"ehr/devices/{device_id}/readings"
    ingest()
    publish_raw(
        broker_url, [(topic, reading)] * 3 + [(topic, reading.replace(b'"seq":5', b'"seq":6'))]
    )
    wait_for(lambda: 6 in stored(apps, device_id))
    assert sorted(stored(apps, device_id)) == [5, 6]


def test_readings_sent_while_the_ehr_is_down_arrive_when_it_returns(
    apps, linked, broker_url, device_id, ingest
):
    """The persistent session (clean_session false, QoS 1): the EHR's ingestion stops in the
    middle of a stream and comes back; 0 lost, 0 duplicated."""
    first = ingest()
    simulation = simulate(broker_url, device_id, 400, interval=0.02, wait=False)
    wait_for(lambda: len(stored(apps, device_id)) >= 50)
    first.stop()
    assert simulation.poll() is None, "the stream ended before the EHR stopped"
    time.sleep(0.5)  # readings keep coming while nobody takes them
    ingest()
    finish(simulation)
    wait_for(lambda: len(stored(apps, device_id)) == 400, timeout=15)
    seqs = stored(apps, device_id)
    assert sorted(seqs) == list(range(1, 401))


@pytest.fixture
def own_mosquitto(tmp_path):
    """A Mosquitto of this test's own, with persistence, so it can be restarted."""
    broker = PrivateMosquitto(mosquitto_binary(), tmp_path, free_port()).start()
    yield broker
    broker.stop()


def test_a_broker_restart_mid_stream_loses_nothing(apps, linked, device_id, own_mosquitto):
    ingestor = Ingestor(apps.ehr_app, own_mosquitto.url, f"ehr-{uuid.uuid4().hex[:8]}").start()
    try:
        assert ingestor.connected.wait(10)
        simulation = simulate(own_mosquitto.url, device_id, 300, interval=0.01, wait=False)
        wait_for(lambda: len(stored(apps, device_id)) >= 40)
        own_mosquitto.stop()
        time.sleep(1.0)  # the monitor buffers; the EHR waits
        own_mosquitto.start()
        finish(simulation)
        wait_for(
            lambda: len(stored(apps, device_id)) == 300,
            timeout=30,
            what=f"300 readings; stored {len(stored(apps, device_id))}",
        )
        assert sorted(stored(apps, device_id)) == list(range(1, 301))
    finally:
        ingestor.stop()


@pytest.fixture
def own_embedded_broker(tmp_path):
    """The embedded broker with a state file, restartable for real: every start() is a new
    EmbeddedBroker (a new amqtt Broker on a new event loop and thread) on the same port and
    file, and stop() first ends the previous one completely, listener included."""
    port = free_port()
    state_file = tmp_path / "mqtt_broker.db"

    class Broker:
        url = f"mqtt://127.0.0.1:{port}"
        running = None

        def start(self):
            assert self.running is None, "the previous broker is still running"
            self.running = EmbeddedBroker(port=port, state_file=state_file).start(timeout=30)

        def stop(self):
            self.running.stop(timeout=30)
            self.running = None
            assert not listening("127.0.0.1", port), "the stopped broker still listens"

        def owed(self, client_id: str) -> list[int]:
            """The seqs of the readings the broker's state file says it owes client_id (read
            beside the broker: the file is in WAL mode)."""
            with closing(sqlite3.connect(state_file, timeout=30)) as db:
                query = "SELECT payload FROM pending WHERE client_id = ? ORDER BY id"
                payloads = [row[0] for row in db.execute(query, (client_id,))]
            return [json.loads(p)["seq"] for p in payloads if b'"seq"' in p]

    broker = Broker()
    broker.start()
    yield broker
    if broker.running is not None:
        broker.stop()


def test_an_embedded_broker_restart_mid_stream_loses_nothing(
    apps, linked, device_id, own_embedded_broker
):
    """As above, with the embedded amqtt broker and its state file, restarted twice in one
    stream: once with the EHR connected, once with the EHR away, so that readings queued for
    its persistent session exist only in the state file while no broker runs."""
    broker = own_embedded_broker
    client_id = f"ehr-{uuid.uuid4().hex[:8]}"
    simulation = None

    def count() -> int:
        return len(stored(apps, device_id))

    def until(predicate, what: str, timeout: float = 60.0) -> None:
        """wait_for, with what was stored *when it gave up* in the failure message."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                seqs = stored(apps, device_id)
                missing = sorted(set(range(1, 301)) - set(seqs))
                running = simulation is not None and simulation.poll() is None
                pytest.fail(
                    f"timed out ({timeout:.0f} s) waiting for {what}: stored {len(seqs)} rows "
                    f"({len(set(seqs))} distinct), missing {missing[:40]}"
                    f"{' …' if len(missing) > 40 else ''}; the broker owes the EHR "
                    f"{broker.owed(client_id)[:40]}; simulator "
                    f"{'running' if running else f'ended ({simulation.returncode})'}"
                )
            time.sleep(0.05)

    ingestor = Ingestor(apps.ehr_app, broker.url, client_id).start()
    try:
        assert ingestor.connected.wait(30), "the ingestor did not connect"
        # 300 readings over 12 s: time enough for both restarts on a busy machine.
        simulation = simulate(broker.url, device_id, 300, interval=0.04, wait=False)
        until(lambda: count() >= 40, "40 readings")

        broker.stop()  # 1: the EHR is connected; the monitor buffers, the EHR waits
        assert simulation.poll() is None, "the stream ended before the first restart"
        time.sleep(1.0)
        broker.start()
        resumed = count() + 30
        until(lambda: count() >= resumed, f"{resumed} readings after the first restart")

        ingestor.stop()  # 2: the EHR goes away; its readings queue at the broker

        def queued() -> set[int]:  # owed, and not stored: not merely an ack still on its way
            return set(broker.owed(client_id)) - set(stored(apps, device_id))

        until(lambda: len(queued()) >= 10, "10 unstored readings queued for the EHR")
        broker.stop()
        owed = len(queued())
        assert simulation.poll() is None, "the stream ended before the second restart"
        time.sleep(0.5)
        broker.start()
        ingestor = Ingestor(apps.ehr_app, broker.url, client_id).start()
        assert ingestor.connected.wait(30), "the ingestor did not reconnect"
        finish(simulation)
        until(lambda: count() == 300, f"300 readings ({owed} queued across the second restart)")
        assert sorted(stored(apps, device_id)) == list(range(1, 301))
        # Every acknowledgement settled its message: nothing is left to send again.
        until(lambda: not broker.owed(client_id), "an empty journal", timeout=30)
    finally:
        ingestor.stop()


def _pat(apps):
    from tests.records.test_ehr_protection import pat_of_alice

    return pat_of_alice(apps)


def test_a_retired_device_is_deregistered_and_its_readings_dropped(
    apps, linked, broker_url, device_id, ingest, caplog
):
    """`uma-health-ehr retire`: the feed stops being a UMA resource, later readings are
    dropped with a log line, and the readings already stored stay."""
    from records_server.cli import main as ehr_cli

    ingest()
    simulate(broker_url, device_id, 5)
    wait_for(lambda: len(stored(apps, device_id)) == 5, what="5 readings")
    resource_id = feed_id(apps, device_id)
    assert resource_id in registered_at_as(apps)

    config = apps.ehr_app.config
    env = {
        "EHR_DATABASE_URL": config["DATABASE_URL"],
        "AS_ISSUER": config["AS_ISSUER"],
        "EHR_URL": config["PUBLIC_URL"],
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        assert ehr_cli(["retire", device_id]) == 0
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert resource_id not in registered_at_as(apps)
    caplog.set_level(logging.WARNING, logger="records_server.ingest")
    late = READING.replace(b'"seq":1', b'"seq":99')
    publish_raw(broker_url, [(f"ehr/devices/{device_id}/readings", late)])
    wait_for(
        lambda: any("retired" in r.message for r in caplog.records), what="the retired log line"
    )
    assert sorted(stored(apps, device_id)) == [1, 2, 3, 4, 5]
