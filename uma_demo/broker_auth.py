"""Sign-in rule of the embedded broker: everyone is let in (a loopback demo broker), but a
client that gives a username is not treated as anonymous.

amqtt keeps QoS 1 messages for an offline persistent session (MQTT 3.1.1 §3.1.2.4) only
when the session is not anonymous, and its own anonymous plugin marks every session so.
The EHR's ingestion connects with a username and a persistent session, so readings sent
while it is down wait for it, as they do on Mosquitto.
"""

from amqtt.plugins.authentication import AnonymousAuthPlugin
from amqtt.session import Session


class NamedSessionsAuthPlugin(AnonymousAuthPlugin):
    async def authenticate(self, *, session: Session) -> bool:
        allowed = await super().authenticate(session=session)
        if allowed and session.username:
            session.is_anonymous = False
        return allowed
