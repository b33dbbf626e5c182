"""How long ``uma-health-as purge-expired`` takes as the expired rows grow.

Each run seeds a scratch database with the app's own code, bulk-inserts ``n`` expired
permission tickets (every other one the rotation of the one before, as need_info and
request_submitted make them), one expired RPT per two tickets pointing at its ticket, and as
many live tickets that must stay; then times ``purge_expired`` once.

    .venv/bin/python bench/purge_expired.py                       # SQLite and PostgreSQL
    .venv/bin/python bench/purge_expired.py --backend sqlite --rows 20000 200000

Rows per second should stay flat as ``n`` grows: the purge is linear only because each
deleted ticket's successors are found through ``ix_permission_tickets_previous``.
"""

import argparse
import sys
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from uma_grant import AuthzDatabase, seed_database  # noqa: E402 - the sibling script

from authz_server import create_app, db  # noqa: E402
from authz_server.housekeeping import purge_expired  # noqa: E402
from authz_server.models import Client, PermissionTicket, Rpt, User, utcnow  # noqa: E402

FIRST_ID = 10_000_000  # clear of the ids the seeding uses


def fill(session, n: int) -> None:
    owner = session.scalar(select(User.id).where(User.username == "alice"))
    carol = session.scalar(select(User.id).where(User.username == "carol"))
    client = session.scalar(select(Client.id).where(Client.client_id == "doctor-app"))
    now = utcnow()
    old, live = now - timedelta(days=3), now + timedelta(minutes=5)

    def ticket(i: int, expires) -> dict:
        rotated = i % 2 == 1 and i < n  # the live ones are not chained
        return {
            "id": FIRST_ID + i,
            "ticket_digest": f"{i:064x}",
            "owner_id": owner,
            "client_pk": client,
            "permissions": [],
            "created_at": expires - timedelta(minutes=5),
            "expires_at": expires,
            "previous_id": FIRST_ID + i - 1 if rotated else None,
        }

    rows = [ticket(i, old) for i in range(n)] + [ticket(n + i, live) for i in range(n)]
    rpts = [
        {
            "digest": f"r{i:063x}",
            "jti": f"j{i}",
            "client_pk": client,
            "requester_id": carol,
            "ticket_id": FIRST_ID + i,
            "permissions": [],
            "issued_at": old,
            "expires_at": old,
        }
        for i in range(1, n, 2)
    ]
    for table, batch in ((PermissionTicket, rows), (Rpt, rpts)):
        for start in range(0, len(batch), 5000):
            session.execute(insert(table), batch[start : start + 5000])
    session.commit()


def measure(backend: str, n: int) -> None:
    database = AuthzDatabase(backend)
    try:
        seed_database(database.url, "http://127.0.0.1:1")
        app = create_app(
            {"MIGRATE_ON_START": True, "DATABASE_URL": database.url, "ISSUER": "http://127.0.0.1:1"}
        )
        with app.app_context():
            session = db.session()
            fill(session, n)
            started = time.perf_counter()
            deleted = purge_expired(session, utcnow(), timedelta(days=1))
            seconds = time.perf_counter() - started
            left = session.scalar(select(func.count()).select_from(PermissionTicket))
        app.extensions["authz_db"].engine.dispose()
        rows = sum(deleted.values())
        print(
            f"{database.version():<18} {n:>9,} expired tickets: {rows:>9,} rows deleted in "
            f"{seconds:6.2f} s = {rows / seconds:>9,.0f} rows/s; {left:,} live tickets left"
        )
    finally:
        database.drop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--rows", type=int, nargs="+", default=[20_000, 200_000])
    args = parser.parse_args(argv)
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    for backend in backends:
        for n in args.rows:
            measure(backend, max(2, min(n, 2_000_000)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
