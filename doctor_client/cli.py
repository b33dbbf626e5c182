"""Command line: ``uma-health-doctor init-db | serve``."""

import argparse
import sys

from . import create_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="uma-health-doctor", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    # Before gunicorn starts its workers, so they never race to create the same tables.
    sub.add_parser("init-db", help="create the doctor app's tables and session key (idempotent)")
    serve = sub.add_parser("serve", help="run the development server (make demo uses gunicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8402)
    args = parser.parse_args(argv)
    app = create_app()
    if args.command == "serve":
        app.run(host=args.host, port=args.port)
    else:
        print("doctor app database ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
