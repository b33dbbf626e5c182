"""Command line: ``uma-health-as seed-demo | rotate-key | purge-expired | db | serve``.

Every command but ``db`` first migrates the database to the code's schema."""

import argparse
import sys
from datetime import timedelta

from app_support.migrations import SchemaMismatch, add_db_commands, refuse, run_db_cli

from . import config, create_app, db
from .housekeeping import purge_expired
from .keys import rotate_signing_key
from .models import utcnow
from .schema import MIGRATIONS
from .seed import seed_demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="uma-health-as", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("seed-demo", help="create the demo people and clients (idempotent)")
    sub.add_parser("rotate-key", help="start signing with a new key; old keys stay published")
    sub.add_parser(
        "purge-expired",
        help="delete tickets, RPTs, PCTs, tokens and codes expired more than "
        "AS_KEEP_EXPIRED_SECONDS ago",
    )
    add_db_commands(sub, parser.prog)
    serve = sub.add_parser("serve", help="run the development server (make demo uses gunicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8400)
    args = parser.parse_args(argv)
    if args.command == "db":
        return run_db_cli(args, MIGRATIONS, config.from_environ()["DATABASE_URL"])

    try:
        app = create_app({"MIGRATE_ON_START": True})
    except SchemaMismatch as error:
        return refuse(parser.prog, error)
    with app.app_context():
        if args.command == "seed-demo":
            seed_demo(db.session())
            print(
                "demo accounts ready: alice, bob, carol, dave, erin, mallory (password = username)"
            )
        elif args.command == "rotate-key":
            print("now signing with key", rotate_signing_key(db.session()))
        elif args.command == "purge-expired":
            keep = timedelta(seconds=app.config["KEEP_EXPIRED_SECONDS"])
            deleted = purge_expired(db.session(), utcnow(), keep)
            print("expired rows deleted:", ", ".join(f"{n} {t}" for t, n in deleted.items()))
    # The commands' connections go now, not at interpreter exit (a pool's way of leaking).
    app.extensions["authz_db"].engine.dispose()
    if args.command == "serve":
        app.run(host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
