"""The teaching layer's plain parts: what a recorded message shows (credentials shortened,
never whole) and how one flow's messages become numbered arrows (issue 8)."""

from app_support.trace import (
    key_parameters,
    shown_authorization,
    shown_header,
    shown_url,
    tickets_in,
    valid_flow_id,
)
from doctor_client.flow_story import steps

TICKET = "t" * 40
RPT = "eyJ" + "r" * 300


def test_credentials_are_shortened_and_other_parameters_left_out():
    shown = key_parameters(
        {"ticket": TICKET, "rpt": RPT, "scope": "read", "password": "alice", "grant_type": "x"}
    )
    assert shown == {"ticket": "tttttttt…", "rpt": "eyJrrrrr…", "scope": "read", "grant_type": "x"}
    assert key_parameters([{"resource_id": "r1", "resource_scopes": ["read"]}]) == {
        "permissions": [{"resource_id": "r1", "resource_scopes": ["read"]}]
    }
    assert key_parameters("not a mapping") == {}
    assert shown_authorization("Bearer " + RPT) == "Bearer eyJrrrrr…"
    assert shown_authorization("Basic ZG9jdG9yOnNlY3JldA==") == "Basic (client credentials)"


def test_tickets_are_found_and_shortened_in_headers_and_bodies():
    challenge = f'UMA realm="ehr", as_uri="http://as", ticket="{TICKET}"'
    location = f"http://doctor/cb?ticket={TICKET}2&state=s{'x' * 30}"
    assert tickets_in(
        {"ticket": TICKET + "1"}, {"WWW-Authenticate": challenge, "Location": location}
    ) == [
        TICKET + "1",
        TICKET + "2",
        TICKET,
    ]
    assert TICKET not in shown_header("WWW-Authenticate", challenge)
    assert TICKET not in shown_header("Location", location)
    assert shown_url(f"http://as/rqp/claims?ticket={TICKET}&client_id=doctor-app") == (
        "http://as/rqp/claims",
        {"ticket": "tttttttt…", "client_id": "doctor-app"},
    )


def test_flow_ids_are_checked_before_use():
    assert valid_flow_id("A" * 22)
    for bad in (None, "", "short", "a" * 65, "../../etc/passwd-xxxxxxxxxx", "x y" * 8):
        assert not valid_flow_id(bad)


def message(
    recorder,
    direction,
    peer,
    method,
    url,
    started,
    finished,
    status,
    request=None,
    response=None,
    note=None,
):
    return {
        "recorder": recorder, "direction": direction, "peer": peer, "method": method,
        "url": url, "started": started, "finished": finished, "status": status,
        "request": request or {}, "response": response or {}, "note": note,
    }  # fmt: skip


def test_nested_calls_come_between_a_request_and_its_answer():
    """The EHR's permission request happens while the client waits for the EHR."""
    told = steps(
        [
            message(
                "client",
                "sent",
                "ehr",
                "GET",
                "http://ehr/api/patients/alice/records/labs",
                1.0,
                1.4,
                401,
                response={"WWW-Authenticate": 'UMA realm="x", as_uri="http://as", ticket="abc…"'},
            ),
            message(
                "ehr",
                "sent",
                "as",
                "POST",
                "http://as/uma/permission",
                1.1,
                1.2,
                201,
                response={"ticket": "abc…"},
            ),
            message("as", "received", "ehr", "POST", "http://as/uma/permission", 1.11, 1.19, 201),
        ],
        party="Bob",
    )
    assert [(s.number, s.source, s.target) for s in told] == [
        (1, "client", "ehr"),
        (2, "ehr", "as"),
        (3, "as", "ehr"),
        (4, "ehr", "client"),
    ]
    assert [s.spec for s in told] == ["RS-1", "PERM-2", "PERM-3", "RS-2"]
    assert told[3].message == "401 Unauthorized"


def test_polls_with_the_same_answer_are_counted_not_repeated_and_notes_attach():
    submitted = {"error": "request_submitted", "ticket": "t2…", "interval": 5}
    grant = {"grant_type": "urn:ietf:params:oauth:grant-type:uma-ticket", "ticket": "t1…"}
    told = steps(
        [
            message(
                "client", "sent", "as", "POST", "http://as/token", 1.0, 1.1, 403, grant, submitted
            ),
            message(
                "as",
                "received",
                "client",
                "POST",
                "http://as/token",
                1.01,
                1.09,
                403,
                note="labs: pending",
            ),
            message(
                "client", "sent", "as", "POST", "http://as/token", 2.0, 2.1, 403, grant, submitted
            ),
            message(
                "client", "sent", "as", "POST", "http://as/token", 3.0, 3.1, 403, grant, submitted
            ),
            message(
                "as", "received", "alice", "POST", "http://as/console/requests/4", 3.5, 3.6, 302
            ),
            message(
                "client",
                "sent",
                "as",
                "POST",
                "http://as/token",
                4.0,
                4.1,
                200,
                grant,
                {"access_token": "eyJ…"},
            ),
        ],
        party="Bob",
    )
    messages = [(s.source, s.target, s.message, s.repeated) for s in told]
    assert messages == [
        ("client", "as", "POST /token", 1),
        ("as", "client", "403 request_submitted", 1),
        ("client", "as", "POST /token", 2),
        ("as", "client", "403 request_submitted", 2),
        ("alice", "as", "POST /console/requests/4", 1),
        ("as", "alice", "302 Found", 1),
        ("client", "as", "POST /token", 1),
        ("as", "client", "200 OK", 1),
    ]
    assert told[1].note == "labs: pending" and told[3].note is None
    assert "Alice has been asked" in told[1].explanation
    assert told[2].explanation.startswith("Polling")


def test_malformed_messages_from_another_app_are_left_out():
    good = message("client", "sent", "ehr", "GET", "http://ehr/api/x", 1.0, 1.1, 200)
    told = steps(
        [good, {"recorder": "ehr"}, "junk", {**good, "peer": "nobody"}, {**good, "started": "1"}]
    )
    assert len(told) == 2


def traced_app(tmp_path, enabled: bool):
    """A one-route Flask app with the trace installed, as each of the three apps has it."""
    from flask import Flask
    from sqlalchemy.orm import DeclarativeBase

    from app_support import trace
    from app_support.database import Database

    class Base(DeclarativeBase):
        pass

    class Message(trace.ProtocolMessageColumns, Base):
        table_prefix = "t"

    class Link(trace.FlowLinkColumns, Base):
        table_prefix = "t"

    app = Flask(__name__)
    app.config["TRACE_ENABLED"] = enabled
    database = Database(f"sqlite:///{tmp_path}/trace.db", Base.metadata).init_app(app, "db")
    Base.metadata.create_all(database.engine)
    trace.install(app, database, "ehr", Message, Link, incoming_peer=lambda request: "client")

    @app.post("/api/thing")
    def thing():
        return {"ticket": TICKET}, 401, {"WWW-Authenticate": f'UMA ticket="{TICKET}"'}

    return app


def test_a_flow_is_recorded_and_served_and_switching_it_off_does_both_no_more(tmp_path):
    flow = "F" * 22
    app = traced_app(tmp_path, enabled=True)
    client = app.test_client()
    client.post("/api/thing", json={"rpt": RPT}, headers={"Uma-Health-Flow": flow})
    client.post("/api/thing", json={"rpt": RPT})  # not in a flow: not recorded
    (recorded,) = client.get(f"/_trace/flows/{flow}").json["messages"]
    assert recorded["direction"] == "received" and recorded["peer"] == "client"
    assert recorded["status"] == 401 and recorded["request"] == {"rpt": "eyJrrrrr…"}
    assert recorded["response"]["ticket"] == "tttttttt…"
    assert RPT[:20] not in str(recorded) and TICKET not in str(recorded)
    assert app.extensions["protocol_trace"].flow_of(TICKET) == flow  # the ticket leads back

    (tmp_path / "off").mkdir()
    off = traced_app(tmp_path / "off", enabled=False)
    off.test_client().post("/api/thing", json={}, headers={"Uma-Health-Flow": flow})
    assert off.test_client().get(f"/_trace/flows/{flow}").status_code == 404
    assert off.extensions["protocol_trace"].messages(flow) == []


def test_a_trace_that_cannot_be_written_costs_the_lesson_not_the_request(tmp_path, caplog):
    app = traced_app(tmp_path, enabled=True)
    app.extensions["protocol_trace"].message_model.__table__.drop(
        app.extensions["db"].engine
    )  # the table is gone: every write fails
    response = app.test_client().post("/api/thing", json={}, headers={"Uma-Health-Flow": "F" * 22})
    assert response.status_code == 401 and response.json["ticket"] == TICKET
    assert "could not record" in caplog.text
