"""Expired protocol rows leave the database (housekeeping.py); what still matters stays.

Rows are made through the real endpoints (a grant with a PAT, a ticket, an RPT and a PCT; a
stranger's pending request; audit events), then purged as if later clocks had come.
"""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from authz_server import cli, db
from authz_server.housekeeping import purge_expired
from authz_server.models import (
    AccessRequest,
    AuditEvent,
    AuthorizationCode,
    Client,
    Pct,
    PermissionTicket,
    Rpt,
    Token,
    User,
    utcnow,
)
from tests.authz.conftest import EHR_AUTH
from tests.authz.test_uma_grant import (
    ask_as,
    assert_uma_error,
    grant,
    id_token_for,
    introspect,
    share,
    ticket_for,
)

DAY = timedelta(days=1)
TABLES = (Rpt, PermissionTicket, Pct, Token, AuthorizationCode, AccessRequest, AuditEvent)


@pytest.fixture
def history(alice_pat, register):
    return register(alice_pat)


def counts(app) -> dict[str, int]:
    with app.app_context():
        session = db.session()
        return {
            m.__tablename__: session.scalar(select(func.count()).select_from(m)) for m in TABLES
        }


def purge_at(app, later: timedelta, keep: timedelta = DAY) -> dict[str, int]:
    with app.app_context():
        return purge_expired(db.session(), utcnow() + later, keep)


def test_expired_rows_go_and_live_ones_stay(app, client, alice_pat, history):
    share(client, {"type": "user", "username": "carol"}, [history])
    granted = ask_as(client, alice_pat, history, "carol")
    assert granted.status_code == 200 and granted.json["pct"]
    assert_uma_error(ask_as(client, alice_pat, history, "bob"), 403, "request_submitted")
    service = client.post("/token", data={"grant_type": "client_credentials"}, auth=EHR_AUTH)
    assert service.status_code == 200  # an access token without a refresh token
    before = counts(app)
    assert all(before[t] for t in ("rpts", "permission_tickets", "pcts", "tokens"))

    # Nothing is removed while it is live or within the day it is kept after expiry.
    assert sum(purge_at(app, timedelta(0)).values()) == 0
    assert sum(purge_at(app, DAY - timedelta(minutes=30)).values()) == 0
    assert counts(app) == before

    # Two days on: tickets (5 min) and RPTs (5 min) are gone, and tokens without a refresh
    # token; the PCT (30 days) and the PAT, whose refresh token lives 30 days, stay.
    gone = purge_at(app, 2 * DAY)
    after = counts(app)
    assert gone["rpts"] == before["rpts"] and after["rpts"] == 0
    assert after["permission_tickets"] == 0 and after["pcts"] == before["pcts"]
    assert 0 < gone["tokens"] < before["tokens"]
    assert introspect(client, alice_pat, granted.json["access_token"]) == {"active": False}

    # Forty days on the rest has expired too. The owner's history is never purged.
    purge_at(app, timedelta(days=40))
    final = counts(app)
    assert final["pcts"] == final["tokens"] == 0
    assert final["access_requests"] == before["access_requests"] == 1
    assert final["audit_events"] == before["audit_events"]


def test_after_a_purge_old_values_are_refused_and_new_grants_work(app, client, alice_pat, history):
    """A purged ticket, RPT or PCT is unknown: the spec's errors, never a 500."""
    app.config["PCT_TTL"] = 60  # so that the PCT has expired two days on, like the RPT
    share(client, {"type": "user", "username": "carol"}, [history])
    ticket = ticket_for(client, alice_pat, history)
    carol = id_token_for(client, "carol")
    first = grant(client, ticket, claim_token=carol).json
    purge_at(app, 2 * DAY)  # the PAT stays: its refresh token lives 30 days

    with app.app_context():
        assert db.session().scalar(select(func.count()).select_from(Pct)) == 0
    assert_uma_error(grant(client, ticket, claim_token=carol), 400, "invalid_grant")  # TKT-3
    upgrade = grant(
        client,
        ticket_for(client, alice_pat, history),
        claim_token=carol,
        rpt=first["access_token"],
    )
    assert_uma_error(upgrade, 400, "invalid_grant")  # UPG: the purged RPT is unknown
    without_claims = grant(client, ticket_for(client, alice_pat, history), pct=first["pct"])
    assert_uma_error(without_claims, 403, "need_info")  # the purged PCT identifies nobody
    again = grant(client, ticket_for(client, alice_pat, history), claim_token=carol)
    assert again.status_code == 200 and again.json["pct"] != first["pct"]


def test_the_command_line_purges_with_the_configured_keep(app, monkeypatch, capsys):
    """`uma-health-as purge-expired`, as `make demo` runs it on every start."""
    with app.app_context():
        session = db.session()
        stale = utcnow() - 3 * DAY
        client_pk = session.scalar(select(Client.id).where(Client.client_id == "doctor-app"))
        carol = session.scalar(select(User.id).where(User.username == "carol"))
        session.add(
            Pct(
                digest="d" * 64,
                client_pk=client_pk,
                requester_id=carol,
                issued_at=stale,
                expires_at=stale,
            )
        )
        session.commit()
    monkeypatch.setenv("DATABASE_URL", app.config["DATABASE_URL"])
    monkeypatch.setenv("AS_KEEP_EXPIRED_SECONDS", str(4 * 24 * 3600))
    assert cli.main(["purge-expired"]) == 0
    assert "0 pcts" in capsys.readouterr().out
    monkeypatch.setenv("AS_KEEP_EXPIRED_SECONDS", str(2 * 24 * 3600))
    assert cli.main(["purge-expired"]) == 0
    assert "1 pcts" in capsys.readouterr().out


def test_a_deleted_tickets_successor_is_found_by_index(app):
    """Deleting a ticket nulls the previous_id of the ticket that replaced it; without an
    index on previous_id each deletion scans the table (bench/purge_expired.py: 20,000
    tickets took 74 s on SQLite and 27 s on PostgreSQL without it, 0.14 s with it)."""
    lookup = "SELECT id FROM permission_tickets WHERE previous_id = 1"
    engine = app.extensions["authz_db"].engine
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            plan = " ".join(row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + lookup))
        else:
            conn.exec_driver_sql("SET enable_seqscan = off")  # a tiny table is scanned anyway
            plan = " ".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + lookup))
    assert "ix_permission_tickets_previous" in plan
