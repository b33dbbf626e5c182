"""Writes ``tests/migrations/pre_alembic/``: the three apps' databases as the code of the last
commit before Alembic made them, with data in every kind of table, for the upgrade tests.

    .venv/bin/python tests/migrations/make_pre_alembic.py

It takes that commit's code with ``git archive`` and runs it (``fill`` below, in a process
whose imports are that code's), once on SQLite files and once on a fresh PostgreSQL database
(TEST_DATABASE_URL, else the local server), then keeps the files and a ``pg_dump``.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

PRE_ALEMBIC = "006430a0c1d4df848d4bfde9a891279fe535c225"
HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "pre_alembic"
REPO = HERE.parent.parent
POSTGRES = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1/postgres")


def fill(as_url: str, ehr_url: str, doctor_url: str) -> None:
    """Runs under the old code: the demo's seed, Alice's link and a share, a UMA grant that
    asked for claims (a ticket that replaced another), Mallory's pending request, readings."""
    from datetime import UTC, datetime, timedelta

    from authz_server.keys import new_private_jwk
    from doctor_client import create_app as doctor_app
    from doctor_client import db as doctor_db
    from doctor_client.models import Person, Visit
    from records_server import create_app as ehr_app
    from records_server import db as ehr_db
    from records_server.models import AccessLog, Device, ProtectionLink, Reading
    from records_server.seed import provision, seed_demo
    from tests.authz.conftest import RECORD, bearer, build_app, code_flow_tokens
    from tests.authz.test_uma_grant import (
        DOCTOR_AUTH,
        ID_TOKEN,
        UMA_GRANT,
        id_token_for,
        share,
        ticket_for,
    )

    app = build_app(as_url, new_private_jwk())
    client = app.test_client()
    pat = code_flow_tokens(client, "alice")["access_token"]
    resources = {}
    for name in ("history", "labs", "prescriptions"):
        body = {**RECORD, "name": f"Alice's {name}", "type": f"urn:uma-health:{name}"}
        answer = client.post("/uma/resource_set", json=body, headers=bearer(pat))
        resources[name] = answer.json["_id"]
    share(client, {"type": "user", "username": "carol"}, [resources["history"]])
    # need_info: the doctor app asked without claims, so the AS handed out a new ticket.
    ticket = ticket_for(client, pat, resources["labs"])
    asked = client.post(
        "/token", data={"grant_type": UMA_GRANT, "ticket": ticket}, auth=DOCTOR_AUTH
    )
    assert asked.json["error"] == "need_info", asked.json
    # Mallory asks for the labs: a pending request and its audit entry.
    ticket = ticket_for(client, pat, resources["labs"])
    mallory = id_token_for(client, "mallory")
    submitted = client.post(
        "/token",
        data={
            "grant_type": UMA_GRANT,
            "ticket": ticket,
            "claim_token": mallory,
            "claim_token_format": ID_TOKEN,
        },
        auth=DOCTOR_AUTH,
    )
    assert submitted.json["error"] == "request_submitted", submitted.json
    app.extensions["authz_db"].engine.dispose()

    now = datetime.now(UTC)
    app = ehr_app({"DATABASE_URL": ehr_url, "SYNC_ON_START": False, "SECRET_KEY": "x"})
    with app.app_context():
        session = ehr_db.session()
        seed_demo(session)
        device = provision(session, "bp-monitor-001", "alice")
        device.announced_at = now
        for seq in range(1, 6):
            session.add(
                Reading(
                    device_pk=device.id,
                    seq=seq,
                    measured_at=now - timedelta(minutes=10 - seq),
                    systolic=120 + seq,
                    diastolic=80,
                    pulse=70,
                )
            )
        patient = device.patient
        session.add(
            ProtectionLink(
                patient_id=patient.id,
                access_token=pat,
                refresh_token="refresh",
                expires_at=now + timedelta(minutes=15),
                scope="openid uma_protection",
            )
        )
        session.add(
            AccessLog(
                patient_id=patient.id,
                resource="history",
                scope="read",
                method="GET",
                subject="carol-sub",
                client_id="doctor-app",
                outcome="granted",
                status=200,
            )
        )
        session.commit()
        assert session.query(Device).count() == 1
    app.extensions["ehr_db"].engine.dispose()

    app = doctor_app({"DATABASE_URL": doctor_url, "SECRET_KEY": "x"})
    with app.app_context():
        session = doctor_db.session()
        carol = Person(sub="carol-sub", username="carol", name="Carol Physician")
        session.add(carol)
        session.flush()
        session.add(
            Visit(
                person_id=carol.id,
                url="http://localhost:8401/api/patients/alice/records/history",
                title="Medical history",
                outcome="granted",
            )
        )
        session.commit()
    app.extensions["doctor_db"].engine.dispose()


def run_old_code(code: Path, urls: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(code), "EHR_URL": "http://localhost:8401"}
    for name in ("AS_DATABASE_URL", "EHR_DATABASE_URL", "DOCTOR_DATABASE_URL", "DATABASE_URL"):
        env.pop(name, None)
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from make_pre_alembic import fill; fill(*sys.argv[2:])"
    )
    subprocess.run([sys.executable, "-c", script, str(HERE), *urls], cwd=code, env=env, check=True)


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        code = scratch / "code"
        code.mkdir()
        archive = subprocess.run(
            ["git", "archive", PRE_ALEMBIC], cwd=REPO, check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(code)], input=archive, check=True)

        files = [
            scratch / f"{app}.db" for app in ("authz_server", "records_server", "doctor_client")
        ]
        run_old_code(code, [f"sqlite:///{path}" for path in files])
        FIXTURES.mkdir(exist_ok=True)
        for path in files:
            shutil.copy(path, FIXTURES / path.name)

        admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
        name = f"uma_pre_alembic_{uuid.uuid4().hex[:8]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = admin.url.set(database=name)
            run_old_code(code, [url.render_as_string(hide_password=False)] * 3)
            dump = subprocess.run(
                [
                    "pg_dump",
                    "--inserts",
                    "--no-owner",
                    "--no-privileges",
                    "--no-comments",
                    "-h",
                    url.host or "127.0.0.1",
                    "-U",
                    url.username or "postgres",
                    name,
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            # Plain SQL for any driver: without psql's \\restrict meta-commands.
            sql = "".join(
                line for line in dump.splitlines(keepends=True) if not line.startswith("\\")
            )
            (FIXTURES / "postgresql.sql").write_text(sql)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            admin.dispose()
    print(f"wrote {FIXTURES} from {PRE_ALEMBIC[:7]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
