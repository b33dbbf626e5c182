"""amqtt forgets an unacknowledged QoS 1 message of a persistent session: a minimal reproduction,
ready to go upstream with docs/amqtt-redelivery.md. Needs only amqtt and paho-mqtt.

    python docs/amqtt_redelivery_repro.py            # amqtt as it is
    python docs/amqtt_redelivery_repro.py --patched  # with uma-health's fix installed first

1. A subscriber with a persistent session (clean session off, a username) subscribes at QoS 1
   and acknowledges nothing (paho's manual_ack).
2. A publisher sends one QoS 1 message; the subscriber receives it and leaves without a PUBACK.
3. The subscriber comes back with the same client id and clean session off.

MQTT 3.1.1 §4.4 ([MQTT-4.4.0-1]) wants the unacknowledged message sent again on that
reconnect (Mosquitto does so). amqtt 0.12.1 never sends it: it drops the message when its
PUBACK wait ends. Prints REDELIVERED (exit 0) or LOST (exit 1).
"""

import argparse
import asyncio
import socket
import sys
import threading
import time

import paho.mqtt.client as mqtt
from amqtt.broker import Broker
from paho.mqtt.enums import CallbackAPIVersion

TOPIC = "repro/readings"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_broker(port: int) -> tuple[asyncio.AbstractEventLoop, Broker]:
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    loop = asyncio.new_event_loop()
    broker = Broker(config, loop=loop)
    threading.Thread(target=loop.run_forever, daemon=True).start()
    asyncio.run_coroutine_threadsafe(broker.start(), loop).result(10)
    return loop, broker


def subscriber(port: int, received: list, manual_ack: bool) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id="repro-subscriber",
        clean_session=False,
        protocol=mqtt.MQTTv311,
        manual_ack=manual_ack,
    )
    client.username_pw_set("repro-user")  # amqtt keeps offline messages for named sessions only
    ready = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(TOPIC, qos=1)
    client.on_subscribe = lambda c, u, mid, rcs, p: ready.set()
    client.on_message = lambda c, u, message: received.append(message.payload)
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    assert ready.wait(10), "no SUBACK"
    return client


def publish(port: int) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish(TOPIC, b"reading-1", qos=1).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patched", action="store_true", help="install uma-health's fix first")
    args = parser.parse_args(argv)
    if args.patched:
        from uma_demo import broker_redelivery

        broker_redelivery.install()
    port = free_port()
    loop, _broker = run_broker(port)
    try:
        first: list[bytes] = []
        client = subscriber(port, first, manual_ack=True)
        publish(port)
        deadline = time.monotonic() + 10
        while not first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first == [b"reading-1"], f"the subscriber got {first}"
        client.disconnect()  # leaves without acknowledging reading-1
        client.loop_stop()
        time.sleep(0.5)

        again: list[bytes] = []
        client = subscriber(port, again, manual_ack=False)
        deadline = time.monotonic() + 5
        while not again and time.monotonic() < deadline:
            time.sleep(0.05)
        client.disconnect()
        client.loop_stop()
    finally:
        # Not broker.shutdown(): it waits 5 s on its broadcast loop, which is another story.
        loop.call_soon_threadsafe(loop.stop)
    print("REDELIVERED" if again == [b"reading-1"] else f"LOST (after reconnect: {again})")
    return 0 if again == [b"reading-1"] else 1


if __name__ == "__main__":
    sys.exit(main())
