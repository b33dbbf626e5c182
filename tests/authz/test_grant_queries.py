"""Every query on the grant path uses an index: nothing scans a table that grows with use.

The statements of one full grant (permission request → ticket → RPT) are captured as they
run, then each is explained by SQLite's query planner. A ``SCAN`` of a growing table (rather
than a ``SEARCH`` through an index) fails the test, so a missing index shows up here long
before it shows up in the benchmark.
"""

import pytest
from sqlalchemy import event, text

from tests.authz.test_uma_grant import grant, id_token_for, share, ticket_for

# Tables that stay tiny whatever the load: scanning them costs nothing.
SMALL_TABLES = {"signing_keys", "settings", "groups"}


@pytest.fixture
def captured(app):
    statements = []
    engine = app.extensions["authz_db"].engine

    def _capture(conn, cursor, statement, parameters, context, executemany):
        if not executemany and statement.lstrip().upper().startswith(
            ("SELECT", "UPDATE", "DELETE")
        ):
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", _capture)
    yield statements
    event.remove(engine, "before_cursor_execute", _capture)


def test_grant_path_queries_are_indexed(app, client, alice_pat, register, captured):
    if not app.config["DATABASE_URL"].startswith("sqlite"):
        pytest.skip(
            "reads SQLite's EXPLAIN QUERY PLAN; it runs on the SQLite leg of every test run"
        )
    history = register(alice_pat)
    labs = register(alice_pat, {"name": "labs", "resource_scopes": ["read"]})
    share(client, {"type": "group", "name": "surgery-center"}, [history, labs])
    bob = id_token_for(client, "bob")
    first = grant(client, ticket_for(client, alice_pat, history), claim_token=bob).json
    captured.clear()

    # The measured grant: permission request, then the uma-ticket grant with an upgrade.
    response = grant(
        client, ticket_for(client, alice_pat, labs), claim_token=bob, rpt=first["access_token"]
    )
    assert response.status_code == 200, response.json
    assert captured, "no statements captured"

    scans = []
    engine = app.extensions["authz_db"].engine
    with engine.connect() as conn:
        for statement, parameters in captured:
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            for row in plan:
                detail = row[-1]
                if detail.startswith("SCAN"):
                    table = detail.split()[1]
                    if table not in SMALL_TABLES:
                        scans.append((detail, statement.split("\n")[0][:120]))
    assert scans == []


def test_index_on_policy_resources_exists(app):
    """The lookup of policies by resource, the heart of "never scan an owner's policies"."""
    engine = app.extensions["authz_db"].engine
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            names = conn.execute(text("PRAGMA index_list('policy_resources')")).all()
            assert any(row[1] == "ix_policy_resources_resource" for row in names)
        else:
            names = conn.execute(
                text("SELECT indexname FROM pg_indexes WHERE tablename = 'policy_resources'")
            ).all()
            assert ("ix_policy_resources_resource",) in names


def in_transaction(dbapi_connection) -> bool:
    if hasattr(dbapi_connection, "in_transaction"):  # sqlite3
        return dbapi_connection.in_transaction
    return dbapi_connection.info.transaction_status != 0  # psycopg: 0 is IDLE


@pytest.fixture
def transaction_states(app):
    """For each statement the AS runs, whether its connection was inside a transaction."""
    states = []
    engine = app.extensions["authz_db"].engine

    def _after(conn, cursor, statement, parameters, context, executemany):
        states.append((statement.split()[0].upper(), in_transaction(cursor.connection)))

    event.listen(engine, "after_cursor_execute", _after)
    yield states
    event.remove(engine, "after_cursor_execute", _after)


def test_the_permission_request_runs_without_a_transaction(
    client, alice_pat, register, transaction_states
):
    """Two reads and one INSERT: a BEGIN and a COMMIT would be two round trips for nothing
    on PostgreSQL. The grant's writes, by contrast, commit together."""
    history = register(alice_pat)
    share(client, {"type": "user", "username": "carol"}, [history])
    carol = id_token_for(client, "carol")
    transaction_states.clear()
    ticket = ticket_for(client, alice_pat, history)
    assert [kind for kind, _ in transaction_states] == ["SELECT", "SELECT", "INSERT"]
    assert not any(inside for _, inside in transaction_states)

    transaction_states.clear()
    assert grant(client, ticket, claim_token=carol).status_code == 200
    writes = [inside for kind, inside in transaction_states if kind in ("UPDATE", "INSERT")]
    assert writes and all(writes)
