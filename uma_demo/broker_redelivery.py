"""Redelivery for the embedded broker: a QoS 1 message sent to a persistent session and not
acknowledged when the subscriber goes away is kept and sent again when it reconnects
(MQTT 3.1.1 §4.4, [MQTT-4.4.0-1]), as Mosquitto does.

amqtt 0.12 drops such a message from the session when its PUBACK wait ends (the client
left, or five seconds passed), so the EHR's ingestion, which acknowledges only after its
batch is committed, lost the readings in flight whenever it stopped. docs/amqtt-redelivery.md
has a minimal reproduction for upstream.
"""

import amqtt
import amqtt.broker
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import OUTGOING


class RedeliveringHandler(BrokerProtocolHandler):
    async def _handle_qos1_message_flow(self, app_message) -> None:
        session = self.session
        keep = (
            app_message.direction == OUTGOING and session is not None and not session.clean_session
        )
        try:
            await super()._handle_qos1_message_flow(app_message)
        finally:
            if keep and app_message.puback_packet is None:
                # amqtt's own flow has just discarded it; the reconnect's retry needs it.
                session.inflight_out[app_message.packet_id] = app_message


# The amqtt versions whose private _handle_qos1_message_flow this patch was read against
# (and the reproduction run with): any other may have changed it, or fixed the bug.
KNOWN_AMQTT = ("0.12.1",)


class UnknownAmqtt(RuntimeError):
    """The installed amqtt is not one the patch was checked against."""


def check_amqtt_version(version: str = amqtt.__version__) -> None:
    if version not in KNOWN_AMQTT:
        raise UnknownAmqtt(
            f"amqtt {version} is not one of {', '.join(KNOWN_AMQTT)}, which the embedded "
            "broker's redelivery patch was checked against: see docs/amqtt-redelivery.md"
        )


def install() -> None:
    """amqtt.broker builds its handlers from this module attribute (``init_from_connect`` is a
    classmethod on it), so every connection of this process gets the redelivering flow."""
    check_amqtt_version()
    amqtt.broker.BrokerProtocolHandler = RedeliveringHandler
