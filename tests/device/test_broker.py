"""uma_demo/broker.py: the embedded amqtt broker, in a thread and as `python -m uma_demo.broker`."""

import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from amqtt.errors import BrokerError
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import free_port
from uma_demo.broker import EmbeddedBroker, wait_until_accepting

ROOT = Path(__file__).resolve().parents[2]


def round_trip(host: str, port: int) -> bytes:
    """Publish one QoS 1 message to ourselves through the broker; return what came back."""
    topic = f"test/{uuid.uuid4().hex}"
    got = threading.Event()
    received: list[bytes] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)

    def on_connect(client, userdata, flags, reason_code, properties):
        assert not reason_code.is_failure
        client.subscribe(topic, qos=1)

    def on_subscribe(client, userdata, mid, reason_codes, properties):
        client.publish(topic, b"ping", qos=1)

    def on_message(client, userdata, message):
        received.append(message.payload)
        got.set()

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    client.connect(host, port, keepalive=10)
    client.loop_start()
    try:
        assert got.wait(15), "no round trip through the broker"
    finally:
        client.disconnect()
        client.loop_stop()
    return received[0]


def test_embedded_broker_start_stop_restart_same_port():
    broker = EmbeddedBroker(port=free_port())
    with broker:
        assert broker.running
        assert round_trip(broker.host, broker.port) == b"ping"
    assert not broker.running
    broker.stop()  # idempotent
    with broker:  # same port again: a restart as clients see it
        assert round_trip(broker.host, broker.port) == b"ping"


def test_embedded_broker_refuses_a_taken_port():
    with EmbeddedBroker(port=free_port()) as first:
        with pytest.raises(BrokerError):
            EmbeddedBroker(port=first.port).start()
        assert round_trip(first.host, first.port) == b"ping"


def test_starting_twice_is_an_error():
    with EmbeddedBroker(port=free_port()) as broker:
        with pytest.raises(RuntimeError):
            broker.start()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_python_m_uma_demo_broker(signum):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uma_demo.broker", "--port", str(port)],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == (
            f"MQTT broker (amqtt) listening on mqtt://127.0.0.1:{port}"
        )
        wait_until_accepting("127.0.0.1", port)
        assert round_trip("127.0.0.1", port) == b"ping"
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    # amqtt itself sometimes warns (e.g. "PUBACK waiter with Id '1' already done"): not ours.
    assert "Traceback" not in stderr and " ERROR " not in stderr, stderr


def test_python_m_uma_demo_broker_on_a_taken_port_exits_1():
    with EmbeddedBroker(port=free_port()) as taken:
        done = subprocess.run(
            [sys.executable, "-m", "uma_demo.broker", "--port", str(taken.port)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{taken.port}" in done.stderr


def test_wait_until_accepting_times_out_on_a_closed_port():
    with pytest.raises(TimeoutError):
        wait_until_accepting("127.0.0.1", free_port(), timeout=0.2)
