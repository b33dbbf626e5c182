"""Fixtures for the device simulator: brokers (embedded amqtt, the local Mosquitto), subscribers."""

import uuid

import pytest

from tests.conftest import free_port
from tests.device.mqtt_helpers import (
    WIRE_RECORDER,
    PrivateMosquitto,
    Subscriber,
    clear_retained,
    mosquitto_binary,
    shared_mosquitto,
)
from uma_demo.broker import EmbeddedBroker


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
        return shared_mosquitto()
    broker = request.getfixturevalue("amqtt_broker")
    return broker.host, broker.port


@pytest.fixture
def private_mosquitto(tmp_path):
    """A restartable Mosquitto with persistence on a free port (never the shared one)."""
    broker = PrivateMosquitto(mosquitto_binary(), tmp_path, free_port()).start()
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
