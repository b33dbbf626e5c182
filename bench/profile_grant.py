"""Where a UMA grant spends its time on the server: cProfile over a few hundred grants.

The app runs in this process behind a single-threaded werkzeug server on 127.0.0.1; a WSGI
middleware switches the profiler on only while the server handles a request, so the client
side (requests) stays out of the figures. The same HTTP steps as bench/uma_grant.py are
used: permission request → ticket → uma-ticket grant with carol's ID token → RPT.

    .venv/bin/python bench/profile_grant.py                       # 300 grants, SQLite
    .venv/bin/python bench/profile_grant.py --backend postgresql --grants 200 --top 40
    .venv/bin/python bench/profile_grant.py --no-profile --grants 1000   # CPU per op only

A diagnostic, not a benchmark: cProfile slows Python code down, so read the shares, not the
absolute milliseconds. ``--no-profile`` measures the server thread's CPU time per operation
without the profiler: robust while other processes share the machine, unlike throughput.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import pstats
import sys
import threading
import time
from pathlib import Path

from werkzeug.serving import make_server

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import free_port  # noqa: E402 - a sibling module, like uma_grant
from uma_grant import (  # noqa: E402 - the sibling script, importable once its folder is on the path
    AuthzDatabase,
    LeanClient,
    full_grant_op,
    plain_op,
    prepare_credentials,
    seed_database,
)


class ProfiledApp:
    """Profiles only the server's handling of each request, in the server thread."""

    def __init__(self, app, profile: bool = True):
        self.app = app
        self.profiling = profile
        self.profile = cProfile.Profile()
        self.active = False
        self.requests = 0
        self.cpu_seconds = 0.0

    def __call__(self, environ, start_response):
        if not self.active:
            return self.app(environ, start_response)
        started = time.thread_time()
        if self.profiling:
            self.profile.enable()
        try:
            return list(self.app(environ, start_response))
        finally:
            if self.profiling:
                self.profile.disable()
            self.cpu_seconds += time.thread_time() - started
            self.requests += 1


def profile_ops(label: str, base: str, op, count: int, wrapped: ProfiledApp, top: int):
    wrapped.profile = cProfile.Profile()
    wrapped.requests, wrapped.cpu_seconds = 0, 0.0
    wrapped.active = True
    failures = 0
    deadline = time.monotonic() + 300  # bounded in time as well as in count
    client = LeanClient(base)
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        try:
            op(client)
        except Exception as error:  # noqa: BLE001 - a diagnostic run reports and goes on
            failures += 1
            if failures == 1:
                print(f"first failure: {error!r}")
    client.close()
    wrapped.active = False
    done = count - failures
    print(f"\n=== {label}: {done} ok, {failures} failed, {wrapped.requests} HTTP requests")
    if done:
        per_op = wrapped.cpu_seconds / max(done, 1) * 1000
        how = "under the profiler" if wrapped.profiling else "without the profiler"
        print(f"server CPU per operation {how}: {per_op:.2f} ms")
    if not wrapped.profiling:
        return
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        stats = pstats.Stats(wrapped.profile, stream=out)
        stats.strip_dirs().sort_stats(order).print_stats(top)
        print(f"--- top {top} by {order} ---")
        print(out.getvalue().split("\n", 4)[-1].rstrip())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--grants", type=int, default=300, help="full grants to profile")
    parser.add_argument("--plain", type=int, default=200, help="client_credentials to profile")
    parser.add_argument("--top", type=int, default=30, help="rows per table")
    parser.add_argument(
        "--no-profile", action="store_true", help="only CPU time per operation, no cProfile"
    )
    args = parser.parse_args(argv)
    args.grants = max(1, min(args.grants, 5000))
    args.plain = max(0, min(args.plain, 5000))

    from authz_server import create_app

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log line per request

    database = AuthzDatabase(args.backend)
    server = None
    try:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        seed_database(database.url, base)
        app = create_app({"MIGRATE_ON_START": True, "DATABASE_URL": database.url, "ISSUER": base})
        wrapped = ProfiledApp(app, profile=not args.no_profile)
        server = make_server("127.0.0.1", port, wrapped, threaded=False)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.daemon = True
        thread.start()
        creds = prepare_credentials(base, 10)
        grant, plain = full_grant_op(creds), plain_op()
        warm = LeanClient(base)
        plain(warm)
        for _ in range(10):
            grant(warm)
        warm.close()
        label = f"full UMA grant ({database.version()})"
        profile_ops(label, base, grant, args.grants, wrapped, args.top)
        if args.plain:
            profile_ops("plain client_credentials", base, plain, args.plain, wrapped, args.top)
        app.extensions["authz_db"].engine.dispose()
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        database.drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
