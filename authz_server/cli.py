"""Command line: ``uma-health-as seed-demo | rotate-key | serve``."""

import argparse
import sys

from . import create_app, db
from .keys import rotate_signing_key
from .seed import seed_demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="uma-health-as", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("seed-demo", help="create the demo people and clients (idempotent)")
    sub.add_parser("rotate-key", help="start signing with a new key; old keys stay published")
    serve = sub.add_parser("serve", help="run the development server (make demo uses gunicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8400)
    args = parser.parse_args(argv)

    app = create_app()
    with app.app_context():
        if args.command == "seed-demo":
            seed_demo(db.session())
            print(
                "demo accounts ready: alice, bob, carol, dave, erin, mallory (password = username)"
            )
        elif args.command == "rotate-key":
            print("now signing with key", rotate_signing_key(db.session()))
    if args.command == "serve":
        app.run(host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
