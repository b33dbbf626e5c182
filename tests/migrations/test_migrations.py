"""Schema migrations (Alembic, one history per app): a database made before Alembic upgrades
in place with its data; the revisions give exactly the models' schema; each step goes down and
up again; a served app refuses a database its code does not match, in one line."""

import shutil
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, select, text

from app_support.migrations import SchemaMismatch
from authz_server.schema import MIGRATIONS as AS_MIGRATIONS
from doctor_client.schema import MIGRATIONS as DOCTOR_MIGRATIONS
from records_server.schema import MIGRATIONS as EHR_MIGRATIONS
from tests.conftest import BACKENDS, POSTGRES_URL, free_port

FIXTURES = Path(__file__).with_name("pre_alembic")
# The apps' databases as make_pre_alembic.py had commit 006430a's code make them.
FILES = {"authz": "authz_server.db", "ehr": "records_server.db", "doctor": "doctor_client.db"}
HISTORIES = {"authz": AS_MIGRATIONS, "ehr": EHR_MIGRATIONS, "doctor": DOCTOR_MIGRATIONS}


@pytest.fixture
def fresh_postgres():
    """A database of its own on the test server (migrations create and drop whole tables)."""
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"uma_migrate_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield admin.url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def empty_urls(request, tmp_path) -> dict[str, str]:
    """Each app's database URL, empty: three SQLite files, or one PostgreSQL database that all
    three share (as the README allows: their table names never collide)."""
    if request.param == "sqlite":
        return {app: f"sqlite:///{tmp_path / name}" for app, name in FILES.items()}
    url = request.getfixturevalue("fresh_postgres")
    return dict.fromkeys(FILES, url)


@pytest.fixture
def pre_alembic_urls(empty_urls, tmp_path) -> dict[str, str]:
    """The pre-Alembic databases, loaded into the empty ones."""
    if empty_urls["authz"].startswith("sqlite"):
        for name in FILES.values():
            shutil.copy(FIXTURES / name, tmp_path / name)
        return empty_urls
    engine = create_engine(empty_urls["authz"])
    raw = engine.raw_connection()
    try:
        # pg_dump's script, plain SQL: psycopg runs it as one simple query, no parameters.
        raw.driver_connection.execute((FIXTURES / "postgresql.sql").read_text())
        raw.commit()
    finally:
        raw.close()
    engine.dispose()
    return empty_urls


def snapshot(url: str, tables, only: dict | None = None) -> dict[str, tuple]:
    """Every row of these tables as the database holds it, in key order, with the
    names of the columns read: all the table has, or those ``only`` names for it."""
    engine = create_engine(url)
    found = {}
    with engine.connect() as connection:
        present = inspect(connection)
        for table in tables:
            if not present.has_table(table.name):
                continue
            there = {column["name"] for column in present.get_columns(table.name)}
            wanted = only[table.name] if only else there
            columns = [c for c in table.columns if c.name in there and c.name in wanted]
            result = connection.execute(select(*columns).order_by(*table.primary_key.columns))
            found[table.name] = ([c.name for c in columns], [tuple(row) for row in result])
    engine.dispose()
    return found


def upgrade_all(urls: dict[str, str]) -> None:
    for app, history in HISTORIES.items():
        engine = create_engine(urls[app])
        history.upgrade(engine)
        assert history.mismatch(engine) is None
        engine.dispose()


def test_a_database_made_before_alembic_upgrades_in_place_with_its_data(pre_alembic_urls):
    """Every row of every table the old code made is still there, unchanged, after the
    upgrade (new columns and tables aside), and the apps start on it."""
    before = {
        app: snapshot(pre_alembic_urls[app], history.metadata.sorted_tables)
        for app, history in HISTORIES.items()
    }
    for table in ("policies", "access_requests", "permission_tickets", "audit_events"):
        assert before["authz"][table][1], f"the fixture has no {table}"
    assert before["ehr"]["ehr_readings"][1] and before["doctor"]["doctor_visits"][1]

    upgrade_all(pre_alembic_urls)

    for app, history in HISTORIES.items():
        columns = {table: names for table, (names, _rows) in before[app].items()}
        after = snapshot(pre_alembic_urls[app], history.metadata.sorted_tables, columns)
        assert {table: after[table] for table in before[app]} == before[app]
    _apps_start_and_read(pre_alembic_urls)


def _apps_start_and_read(urls: dict[str, str]) -> None:
    """The upgraded databases serve: the check passes, Alice signs in and sees her share,
    the EHR still has her readings."""
    from authz_server import create_app as as_app
    from records_server import create_app as ehr_app
    from tests.authz.conftest import login

    app = as_app({"TESTING": True, "DATABASE_URL": urls["authz"], "SECRET_KEY": "t"})
    client = app.test_client()
    assert login(client, "alice").status_code == 302
    policies = client.get("/api/owner/policies").json
    assert [policy["subject"].get("username") for policy in policies] == ["carol"]
    app.extensions["authz_db"].engine.dispose()

    app = ehr_app({"TESTING": True, "DATABASE_URL": urls["ehr"], "SYNC_ON_START": False})
    with app.app_context():
        from records_server.db import session
        from records_server.models import Reading

        assert len(session().scalars(select(Reading)).all()) == 5
    app.extensions["ehr_db"].engine.dispose()


def test_an_index_added_before_alembic_reaches_an_old_database(pre_alembic_urls):
    """ix_permission_tickets_previous came after the first demos: a database made before it
    gets it from the first revision (it used to need make demo-reset)."""
    engine = create_engine(pre_alembic_urls["authz"])
    with engine.begin() as connection:
        connection.execute(text("DROP INDEX ix_permission_tickets_previous"))
    upgrade_all(pre_alembic_urls)
    indexes = {i["name"] for i in inspect(engine).get_indexes("permission_tickets")}
    assert "ix_permission_tickets_previous" in indexes
    engine.dispose()


@pytest.mark.parametrize("app", HISTORIES)
def test_the_migrations_give_exactly_the_models_schema(empty_urls, app):
    """Revisions run one by one from an empty database (not the create_all shortcut) leave
    nothing for autogenerate to write: the models and the migrations agree."""
    history = HISTORIES[app]
    engine = create_engine(empty_urls[app])
    with engine.begin() as connection:
        command.upgrade(history.config(connection), "head")
    with engine.begin() as connection:
        command.check(history.config(connection))  # raises AutogenerateDiffsDetected
    assert history.mismatch(engine) is None
    engine.dispose()


@pytest.mark.parametrize("app", HISTORIES)
def test_every_revision_goes_down_one_step_and_up_again(empty_urls, app):
    history = HISTORIES[app]
    engine = create_engine(empty_urls[app])
    revisions = [script.revision for script in history.script.walk_revisions()][::-1]
    for revision in revisions:
        history.upgrade(engine, revision)
        history.downgrade(engine, "-1")
        history.upgrade(engine, revision)
    assert history.mismatch(engine) is None
    with engine.begin() as connection:
        command.check(history.config(connection))
    history.downgrade(engine, "base")
    leftover = set(inspect(engine).get_table_names()) & set(history.metadata.tables)
    assert not leftover
    engine.dispose()


def test_a_served_app_refuses_a_database_its_code_does_not_match(empty_urls):
    from authz_server import create_app

    url = empty_urls["authz"]
    with pytest.raises(SchemaMismatch, match=r"no schema yet: run `uma-health-as db upgrade`"):
        create_app({"DATABASE_URL": url})
    engine = create_engine(url)
    AS_MIGRATIONS.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version_authz SET version_num = 'f00dcafe'"))
    with pytest.raises(SchemaMismatch, match="at revision f00dcafe, which this code does not"):
        create_app({"DATABASE_URL": url})
    with pytest.raises(SchemaMismatch, match="f00dcafe"):
        AS_MIGRATIONS.upgrade(engine)  # not Alembic's "Can't locate revision" from deep inside
    engine.dispose()


@pytest.mark.live
def test_gunicorn_and_the_clis_answer_a_mismatch_in_one_line(tmp_path):
    """An empty database: gunicorn stops at once, naming the command; the CLI's upgrade
    mends it; a revision the code does not know is refused by the CLI in one line."""
    url = f"sqlite:///{tmp_path / 'as.db'}"
    env = {"PATH": "/usr/bin:/bin", "AS_DATABASE_URL": url, "HOME": str(tmp_path)}
    served = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{free_port()}"]
        + ["authz_server.wsgi:app"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert served.returncode != 0
    assert (
        "uma-health-as: the authz database has no schema yet: run `uma-health-as db upgrade`"
        in (served.stderr)
    )
    assert "Traceback" not in served.stderr

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "authz_server.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    upgraded = cli("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.startswith(f"authz database at {AS_MIGRATIONS.head()}")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version_authz SET version_num = 'f00dcafe'"))
    engine.dispose()
    for args in (("seed-demo",), ("db", "upgrade")):
        refused = cli(*args)
        assert refused.returncode == 1
        assert refused.stderr.startswith(
            "uma-health-as: the authz database is at revision f00dcafe"
        )
        assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr


@pytest.mark.parametrize("app", HISTORIES)
def test_healthz_reports_a_schema_that_changed_under_the_app(empty_urls, app):
    """A database downgraded (or migrated by other code) behind a running app: /healthz says
    so with 503 instead of "ok" while pages answer 500."""
    from authz_server import create_app as as_app
    from doctor_client import create_app as doctor_app
    from records_server import create_app as ehr_app

    build = {"authz": as_app, "ehr": ehr_app, "doctor": doctor_app}[app]
    config = {"TESTING": True, "MIGRATE_ON_START": True, "DATABASE_URL": empty_urls[app]}
    if app == "ehr":
        config["SYNC_ON_START"] = False
    served = build(config)
    client = served.test_client()
    assert client.get("/healthz").status_code == 200
    engine = create_engine(empty_urls[app])
    HISTORIES[app].downgrade(engine, "base")
    answer = client.get("/healthz")
    assert answer.status_code == 503
    assert "db upgrade`" in answer.json["problem"]
    HISTORIES[app].upgrade(engine)
    assert client.get("/healthz").status_code == 200
    engine.dispose()
    for database in served.extensions.values():
        if hasattr(database, "engine"):
            database.engine.dispose()


def test_nodes_migrating_at_the_same_instant_make_one_schema(empty_urls):
    """Two nodes started together each run `db upgrade`: the lock lets one create the
    tables and the others find them made."""
    errors = []
    start = threading.Barrier(4)

    def node():
        engine = create_engine(empty_urls["authz"])
        try:
            start.wait()
            AS_MIGRATIONS.upgrade(engine)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=node) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    engine = create_engine(empty_urls["authz"])
    assert AS_MIGRATIONS.mismatch(engine) is None
    with engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version_authz"))
        assert len(versions.all()) == 1
    engine.dispose()


def test_the_apps_keep_their_histories_apart_in_one_database(empty_urls):
    """On PostgreSQL the three apps share one database here: each has its own version table,
    and each app's autogenerate sees only its own tables (nothing to drop of the others)."""
    upgrade_all(empty_urls)
    engine = create_engine(empty_urls["authz"])
    tables = set(inspect(engine).get_table_names())
    assert "alembic_version_authz" in tables
    if len(set(empty_urls.values())) == 1:
        assert {"alembic_version_ehr", "alembic_version_doctor"} <= tables
        for history in HISTORIES.values():
            with engine.begin() as connection:
                command.check(history.config(connection))
    engine.dispose()
