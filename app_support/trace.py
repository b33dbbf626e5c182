"""The teaching layer's protocol trace: every app records the UMA messages it sends and
receives under a *flow id*, so one flow can be put back together across the doctor app, the
EHR and the AS (issue 8).

How a flow travels: the doctor app starts one when a person opens or writes a record and
sends it in the ``Uma-Health-Flow`` header on every call; the EHR passes it on to the AS.
Browsers cannot carry a header across a redirect, so the AS ties the tickets it hands out to
the flow (as digests, never the tickets) and finds the flow again when a ticket comes back
through the person's browser at the claims interaction endpoint.

Only requests that belong to a flow are recorded, so ordinary traffic (and the benchmarks)
pays one dictionary lookup. Token values are shortened, never stored whole.
"""

import hashlib
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from flask import Blueprint, Flask, abort, current_app, g, has_request_context, jsonify, request
from sqlalchemy import JSON, Float, Integer, String, Text, delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, declared_attr, mapped_column

from .database import UTCDateTime

FLOW_HEADER = "Uma-Health-Flow"
_FLOW_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")

# Parameters worth showing a learner; everything else is left out of the trace.
KEY_PARAMETERS = (
    "grant_type", "ticket", "claim_token", "claim_token_format", "pct", "rpt", "scope",
    "token", "token_type_hint", "resource_id", "resource_scopes", "client_id",
    "claims_redirect_uri", "state", "error", "error_description", "access_token",
    "token_type", "upgraded", "interval", "required_claims", "redirect_user", "active",
    "permissions", "exp", "_id", "name", "type", "response_type", "redirect_uri", "code",
    "decision",
)  # fmt: skip
# Values that are credentials: only their first characters are ever kept.
SECRET_PARAMETERS = frozenset(
    {"ticket", "claim_token", "pct", "rpt", "token", "access_token", "code", "state",
     "refresh_token", "id_token", "client_secret"}
)  # fmt: skip
KEY_HEADERS = ("WWW-Authenticate", "Warning", "Location")


def new_flow_id() -> str:
    return secrets.token_urlsafe(16)


def valid_flow_id(value: str | None) -> bool:
    return bool(value) and bool(_FLOW_ID.match(value))


def shorten(value: str, keep: int = 8) -> str:
    value = str(value)
    return value if len(value) <= keep + 2 else value[:keep] + "…"


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# -- what a message shows: plain functions, no Flask


def key_parameters(fields: Mapping | list | None) -> dict:
    """The parameters of a form, query or JSON body a learner should see, credentials
    shortened. A JSON array (the permission endpoint's body) becomes ``permissions``."""
    if isinstance(fields, list):
        fields = {"permissions": fields}
    if not isinstance(fields, Mapping):
        return {}
    shown = {}
    for name in KEY_PARAMETERS:
        if name in fields:
            shown[name] = _shown_value(name, fields[name])
    return shown


def _shown_value(name: str, value):
    if name in SECRET_PARAMETERS and isinstance(value, str):
        return shorten(value)
    if isinstance(value, list):
        return [_shown_value(name, item) for item in value[:5]]
    if isinstance(value, dict):
        return {key: _shown_value(key, item) for key, item in list(value.items())[:8]}
    if isinstance(value, str):
        return value if len(value) <= 200 else value[:200] + "…"
    return value


def shown_authorization(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, credential = value.partition(" ")
    if scheme.lower() == "basic":
        return "Basic (client credentials)"
    return f"{scheme} {shorten(credential)}"


def shown_url(url: str) -> tuple[str, dict]:
    """The URL without its query, and the query's key parameters."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query="", fragment="")), key_parameters(
        dict(parse_qsl(parts.query))
    )


def shown_header(name: str, value: str) -> str:
    if name == "Location":
        base, query = shown_url(value)
        return base + ("?" + urlencode(query) if query else "")
    # WWW-Authenticate: UMA realm="…", as_uri="…", ticket="…" — the ticket shortened.
    return re.sub(
        r'((?:ticket|error_description)=")([^"]*)"',
        lambda match: f'{match.group(1)}{shorten(match.group(2))}"',
        value,
    )


def shown_headers(headers: Mapping) -> dict:
    return {name: shown_header(name, headers[name]) for name in KEY_HEADERS if headers.get(name)}


def tickets_in(body, headers: Mapping) -> list[str]:
    """Tickets a response hands out: in a JSON body, a claims redirect or a UMA challenge."""
    found = []
    if isinstance(body, Mapping) and isinstance(body.get("ticket"), str):
        found.append(body["ticket"])
    location = headers.get("Location")
    if location:
        found.extend(
            value for name, value in parse_qsl(urlsplit(location).query) if name == "ticket"
        )
    challenge = headers.get("WWW-Authenticate") or ""
    found.extend(re.findall(r'ticket="([^"]+)"', challenge))
    return found


# -- where messages are kept: one table (and one of ticket links) in each app's database


class ProtocolMessageColumns:
    """Mixin: each app declares ``class ProtocolMessage(ProtocolMessageColumns, Base)``."""

    @declared_attr.directive
    def __tablename__(cls) -> str:
        return f"{cls.table_prefix}_protocol_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    flow_id: Mapped[str] = mapped_column(String(64), index=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # Wall-clock seconds: the apps share a clock (one host, or containers on one host), and
    # the diagram orders the messages of all three by it.
    started: Mapped[float] = mapped_column(Float)
    finished: Mapped[float] = mapped_column(Float)
    recorder: Mapped[str] = mapped_column(String(16))  # "client" | "ehr" | "as"
    direction: Mapped[str] = mapped_column(String(8))  # "sent" | "received"
    peer: Mapped[str] = mapped_column(String(16))  # "party" | "client" | "ehr" | "as" | "alice"
    method: Mapped[str] = mapped_column(String(8))
    url: Mapped[str] = mapped_column(Text)
    status: Mapped[int | None] = mapped_column(Integer)
    request_shown: Mapped[dict] = mapped_column(JSON)
    response_shown: Mapped[dict] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)


class FlowLinkColumns:
    """Mixin: a ticket (or another key, as a digest) that leads back to a flow."""

    @declared_attr.directive
    def __tablename__(cls) -> str:
        return f"{cls.table_prefix}_flow_links"

    key_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    flow_id: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


def as_dict(message) -> dict:
    return {
        "flow_id": message.flow_id,
        "started": message.started,
        "finished": message.finished,
        "recorder": message.recorder,
        "direction": message.direction,
        "peer": message.peer,
        "method": message.method,
        "url": message.url,
        "status": message.status,
        "request": message.request_shown,
        "response": message.response_shown,
        "note": message.note,
    }


# -- recording in a Flask app


@dataclass
class Tracer:
    """One app's recorder. ``incoming_peer(request)`` names who sent an incoming request of
    a flow (None: not recorded); ``peer_of(url)`` names who an outgoing call goes to."""

    role: str
    sessions: Callable[[], Session]  # a factory of fresh sessions, apart from the app's own
    message_model: type
    link_model: type
    incoming_peer: Callable = field(default=lambda _request: None)
    peer_of: Callable[[str], str] = field(default=lambda _url: "?")
    resolve_flow: Callable = field(default=lambda _request: None)
    keep: timedelta = timedelta(days=1)

    # -- the current flow (request-scoped)

    def use_flow(self, flow_id: str, record_request_from: str | None = None) -> None:
        """Make ``flow_id`` this request's flow; record the request itself when it came from
        ``record_request_from`` (a browser the other apps cannot see)."""
        g.trace_flow = flow_id
        if record_request_from:
            g.trace_incoming = (record_request_from, time.time())

    @staticmethod
    def current_flow() -> str | None:
        return g.get("trace_flow") if has_request_context() else None

    def note(self, text: str) -> None:
        """A line of this app's own reasoning, shown with the message it received."""
        if self.current_flow():
            g.trace_note = f"{g.trace_note}; {text}" if g.get("trace_note") else text

    def link(self, key: str) -> None:
        """Let ``key`` (a ticket, a pending request) find this request's flow later."""
        if self.current_flow():
            g.setdefault("trace_links", set()).add(digest(key))

    def flow_of(self, key: str) -> str | None:
        with self.sessions() as session:
            link = session.get(self.link_model, digest(key))
            return link.flow_id if link else None

    # -- messages

    def sent(self, response: requests.Response | None, method: str, url: str, body, started):
        """An outgoing call of this flow (``response`` None: it never got an answer)."""
        flow = self.current_flow()
        if not flow:
            return
        address, query = shown_url(url)
        shown = {**query, **key_parameters(body)}
        prepared = response.request if response is not None else None
        authorization = (
            shown_authorization(prepared.headers.get("Authorization")) if prepared else None
        )
        if authorization:
            shown["Authorization"] = authorization
        answer = {}
        if response is not None:
            answer = {**shown_headers(response.headers), **key_parameters(_json_of(response))}
        self._buffer(
            dict(
                flow_id=flow,
                started=started,
                finished=time.time(),
                direction="sent",
                peer=self.peer_of(url),
                method=method.upper(),
                url=address,
                status=response.status_code if response is not None else None,
                request_shown=shown,
                response_shown=answer if response is not None else {"error": "no answer"},
                note=None,
            )
        )

    def _received(self, response) -> None:
        peer, started = g.trace_incoming
        body = request.get_json(silent=True) if request.is_json else request.form.to_dict()
        shown = {**key_parameters(request.args.to_dict()), **key_parameters(body)}
        authorization = shown_authorization(request.headers.get("Authorization"))
        if authorization:
            shown["Authorization"] = authorization
        answer_body = response.get_json(silent=True) if response.is_json else None
        self._buffer(
            dict(
                flow_id=g.trace_flow,
                started=started,
                finished=time.time(),
                direction="received",
                peer=peer,
                method=request.method,
                url=request.base_url,
                status=response.status_code,
                request_shown=shown,
                response_shown={**shown_headers(response.headers), **key_parameters(answer_body)},
                note=g.get("trace_note"),
            )
        )
        for ticket in tickets_in(answer_body, response.headers):
            self.link(ticket)

    def _buffer(self, message: dict) -> None:
        g.setdefault("trace_messages", []).append(message)

    def flush(self) -> None:
        """Write what this request recorded, in a session of its own, after the app's."""
        messages, links = g.pop("trace_messages", []), g.pop("trace_links", set())
        flow = g.get("trace_flow")
        if not messages and not links:
            return
        now = datetime.now(UTC)
        with self.sessions() as session:
            for message in messages:
                session.add(self.message_model(recorder=self.role, recorded_at=now, **message))
            for key in links:
                session.merge(self.link_model(key_digest=key, flow_id=flow, recorded_at=now))
            for model in (self.message_model, self.link_model):
                session.execute(delete(model).where(model.recorded_at < now - self.keep))
            session.commit()

    def messages(self, flow_id: str) -> list[dict]:
        with self.sessions() as session:
            model = self.message_model
            rows = session.scalars(
                select(model).where(model.flow_id == flow_id).order_by(model.started, model.id)
            )
            return [as_dict(row) for row in rows]

    # -- wiring

    def init_app(self, app: Flask, remove_app_session: Callable[[], None]) -> None:
        app.extensions["protocol_trace"] = self

        @app.before_request
        def _join_flow():
            if not app.config.get("TRACE_ENABLED", True):
                return
            flow = request.headers.get(FLOW_HEADER)
            if not valid_flow_id(flow):
                flow = self.resolve_flow(request)
            if flow:
                self.use_flow(flow, self.incoming_peer(request))

        @app.after_request
        def _record_incoming(response):
            if g.get("trace_flow") and g.get("trace_incoming"):
                self._received(response)
            return response

        @app.teardown_request
        def _flush(_exc):
            if g.get("trace_messages") or g.get("trace_links"):
                # The app's session goes first, so SQLite never sees two writers at once.
                remove_app_session()
                try:
                    self.flush()
                except SQLAlchemyError:  # the lesson is lost, never the request
                    app.logger.warning("could not record this flow's messages", exc_info=True)

        app.register_blueprint(_trace_blueprint())


def _json_of(response: requests.Response):
    if "json" not in response.headers.get("Content-Type", ""):
        return None
    try:
        return response.json()
    except ValueError:
        return None


def tracer() -> Tracer:
    return current_app.extensions["protocol_trace"]


def _trace_blueprint() -> Blueprint:
    """``GET /_trace/flows/<flow_id>``: the messages this app recorded for one flow. The
    unguessable flow id is the capability, as with a ticket; TRACE_ENABLED=false closes it."""
    blueprint = Blueprint("protocol_trace", __name__)

    @blueprint.get("/_trace/flows/<flow_id>")
    def flow_messages(flow_id: str):
        if not current_app.config.get("TRACE_ENABLED", True) or not valid_flow_id(flow_id):
            abort(404)
        trace = tracer()
        response = jsonify({"recorder": trace.role, "messages": trace.messages(flow_id)})
        response.headers["Cache-Control"] = "no-store"
        return response

    return blueprint


class TracedSession(requests.Session):
    """A requests session that sends the current flow id and records each call of a flow."""

    def request(self, method, url, *args, **kwargs):
        if not has_request_context() or not g.get("trace_flow"):
            return super().request(method, url, *args, **kwargs)
        headers = dict(kwargs.pop("headers", None) or {})
        headers[FLOW_HEADER] = g.trace_flow
        body = kwargs.get("json")
        if body is None and isinstance(kwargs.get("data"), Mapping):
            body = kwargs["data"]
        started = time.time()
        trace = tracer()
        try:
            response = super().request(method, url, *args, headers=headers, **kwargs)
        except requests.RequestException:
            trace.sent(None, method, url, body, started)
            raise
        trace.sent(response, method, url, body, started)
        return response


def install(app: Flask, database, role: str, message_model, link_model, **rules) -> Tracer:
    """Record this app's share of every flow in ``database`` (an app_support Database)."""
    trace = Tracer(role, lambda: Session(database.engine), message_model, link_model, **rules)
    trace.init_app(app, database.scoped.remove)
    return trace
