"""Fixtures for the device simulator: brokers (embedded amqtt, the local Mosquitto), subscribers."""

import shutil
import socket
import uuid

import pytest

from tests.conftest import free_port
from tests.device.mqtt_helpers import (
    WIRE_RECORDER,
    PrivateMosquitto,
    Subscriber,
    clear_retained,
)
from uma_demo.broker import EmbeddedBroker

MOSQUITTO = ("127.0.0.1", 1883)


def listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def amqtt_broker():
    """An embedded amqtt broker on a free port, recording the readings it receives."""
    broker = EmbeddedBroker(port=free_port(), plugins={WIRE_RECORDER: {}}).start()
    yield broker
    broker.stop()


@pytest.fixture(params=["amqtt", "mosquitto"])
def broker_address(request) -> tuple[str, int]:
    """(host, port) of each broker the simulator must work with."""
    if request.param == "mosquitto":
        if not listening(*MOSQUITTO):
            pytest.skip("Mosquitto leg: nothing listens on 127.0.0.1:1883")
        return MOSQUITTO
    broker = request.getfixturevalue("amqtt_broker")
    return broker.host, broker.port


@pytest.fixture
def private_mosquitto(tmp_path):
    """A restartable Mosquitto with persistence on a free port (never the shared one)."""
    binary = shutil.which("mosquitto") or shutil.which(
        "mosquitto", path="/usr/sbin:/usr/local/sbin"
    )
    if binary is None:
        pytest.skip("private Mosquitto leg: no mosquitto executable installed")
    broker = PrivateMosquitto(binary, tmp_path, free_port()).start()
    yield broker
    broker.stop()


@pytest.fixture
def device_id() -> str:
    """Unique per test, so tests sharing one Mosquitto never see each other's messages."""
    return f"bp-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def subscribe():
    """subscribe(host, port, device_id) → a started Subscriber; retained announces are
    cleared at teardown so the shared Mosquitto keeps no litter."""
    started: list[Subscriber] = []

    def _subscribe(host: str, port: int, device_id: str, **kwargs) -> Subscriber:
        subscriber = Subscriber(host, port, device_id, **kwargs).start()
        started.append(subscriber)
        return subscriber

    yield _subscribe
    for subscriber in started:
        subscriber.stop()
        clear_retained(subscriber.host, subscriber.port, subscriber.device_id)
