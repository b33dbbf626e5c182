"""Command line: ``uma-health-ehr seed-demo | sync | provision | retire | ingest | db | serve``.

Every command but ``db`` and ``ingest`` first migrates the database to the code's schema."""

import argparse
import sys

from sqlalchemy import select

from app_support.migrations import SchemaMismatch, add_db_commands, refuse, run_db_cli

from . import config, create_app, db
from .as_client import ASUnavailable, NotRegistered
from .db import utcnow
from .ingest import main as ingest_main
from .models import Device
from .pats import NotLinked
from .registration import deregister_one, sync_all
from .schema import MIGRATIONS
from .seed import provision, seed_demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="uma-health-ehr", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("seed-demo", help="create Alice and her records, unlinked (idempotent)")
    sub.add_parser("sync", help="reconcile every linked patient's registrations with the AS")
    provision_cmd = sub.add_parser("provision", help="let a device's readings in for a patient")
    provision_cmd.add_argument("device_id")
    provision_cmd.add_argument("patient")
    retire = sub.add_parser("retire", help="stop a device: drop its readings, deregister its feed")
    retire.add_argument("device_id")
    sub.add_parser("ingest", help="take device readings from MQTT (see records_server.ingest)")
    add_db_commands(sub, parser.prog)
    serve = sub.add_parser("serve", help="run the development server (make demo uses gunicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8401)
    args, rest = parser.parse_known_args(argv)
    if args.command == "ingest":
        return ingest_main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "db":
        return run_db_cli(args, MIGRATIONS, config.from_environ()["DATABASE_URL"])

    # Seeding must work before the AS is up; syncing is this command's explicit job.
    try:
        app = create_app({"SYNC_ON_START": args.command == "serve", "MIGRATE_ON_START": True})
    except SchemaMismatch as error:
        return refuse(parser.prog, error)
    try:
        return _run(app, args)
    finally:
        app.extensions["ehr_db"].engine.dispose()  # a command leaves no connection behind


def _run(app, args) -> int:
    with app.app_context():
        if args.command == "seed-demo":
            seed_demo(db.session())
            print("EHR demo records ready for alice (not yet protected)")
        elif args.command == "sync":
            sync_all(
                db.session(),
                app.extensions["ehr_as"],
                app.config["PUBLIC_URL"],
                app.config["PAT_REFRESH_MARGIN"],
            )
        elif args.command == "provision":
            try:
                provision(db.session(), args.device_id, args.patient)
            except (LookupError, ValueError) as error:
                print(f"error: {error}", file=sys.stderr)
                return 2
            db.session().commit()
            print(f"{args.device_id} provisioned to {args.patient}")
        elif args.command == "retire":
            return _retire(app, args.device_id)
    if args.command == "serve":
        app.run(host=args.host, port=args.port)
    return 0


def _retire(app, device_id: str) -> int:
    session = db.session()
    device = session.scalar(select(Device).where(Device.device_id == device_id))
    if device is None:
        print(f"error: no device {device_id!r}", file=sys.stderr)
        return 2
    device.retired_at = utcnow()
    session.commit()  # retired first: its readings stop now, whatever the AS says
    try:
        deregister_one(session, app.extensions["ehr_as"], device, app.config["PAT_REFRESH_MARGIN"])
    except (ASUnavailable, NotLinked, NotRegistered) as error:
        print(f"{device_id} retired; its feed stays registered until the next sync ({error})")
        return 0
    print(f"{device_id} retired and its feed deregistered")
    return 0


if __name__ == "__main__":
    sys.exit(main())
