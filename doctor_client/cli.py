"""Command line: ``uma-health-doctor init-db | db | serve``.

Every command but ``db`` first migrates the database to the code's schema."""

import argparse
import sys

from app_support.migrations import SchemaMismatch, add_db_commands, refuse, run_db_cli

from . import config, create_app
from .schema import MIGRATIONS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="uma-health-doctor", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    # Before gunicorn starts its workers, so they never race to create the same tables.
    sub.add_parser("init-db", help="migrate the doctor app's tables, make its session key")
    add_db_commands(sub, parser.prog)
    serve = sub.add_parser("serve", help="run the development server (make demo uses gunicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8402)
    args = parser.parse_args(argv)
    if args.command == "db":
        return run_db_cli(args, MIGRATIONS, config.from_environ()["DATABASE_URL"])
    try:
        app = create_app({"MIGRATE_ON_START": True})
    except SchemaMismatch as error:
        return refuse(parser.prog, error)
    if args.command == "serve":
        app.run(host=args.host, port=args.port)
    else:
        print("doctor app database ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
