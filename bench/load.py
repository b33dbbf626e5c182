"""Load test: many doctors at once, through the doctor app and the EHR, on the whole demo.

    .venv/bin/python bench/load.py                                  # SQLite, then PostgreSQL
    .venv/bin/python bench/load.py --backend sqlite --doctors 10 --requests 50   # smoke run

For each backend it starts the demo as ``make demo`` does (``uma_demo.launch``: the AS, the
EHR and the doctor app under gunicorn with ``--workers`` workers each, the embedded broker,
the ingestion and the monitor) on free ports in a scratch directory, against a scratch
database (bench/machine.py). Then, over HTTP as people do:

1. adds ``--doctors`` accounts in the group ``load-test`` at the AS;
2. Alice links her EHR and shares every resource of hers (record sets and the monitor's feed)
   with the group, ``read`` and ``write``, through her owner API;
3. each doctor signs in to the doctor app (OpenID Connect at the AS);
4. every doctor, in a thread of its own, makes ``--requests`` requests to the doctor app, each
   a person's click: an open of a record set (40 %), a poll of the feed page (its own refresh,
   30 %), a read of the feed (20 %) or a note on the medical history (10 %). Each open makes
   the doctor app call the EHR with its RPT (the EHR introspects it at the AS, or reuses an
   answer for 5 s); the first, or one after the RPT expired, runs the UMA grant.

A request is an error when its status or page is not what a person expects (a record, a feed,
a note's redirect), and the servers' log is searched for 5xx, tracebacks and "database is
locked". It prints latency percentiles per kind of click and overall, requests per second,
and where the CPU went (each app's gunicorn, PostgreSQL, this load generator, the rest), then
a markdown block for BENCHMARKS.md. Nothing here asserts on timing.
"""

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import (  # noqa: E402
    ScratchDatabase,
    cpu_model,
    cpu_seconds,
    free_port,
    git,
    machine_cpu_seconds,
    postgres_cpu_seconds,
)
from uma_demo.scenario_http import Browser  # noqa: E402

READY = "uma-health demo is running"
GROUP = "load-test"
MIX = (("open", 40), ("poll", 30), ("feed", 20), ("note", 10))
# What the servers may log that a person never sees, but an operator must.
TROUBLE = re.compile(r'database is locked|Traceback|" 5\d\d ')


class Demo:
    """``make demo`` on free ports, in ``directory`` (its instance/ holds SQLite files)."""

    def __init__(self, directory: Path, database_urls: dict[str, str], workers: int):
        ports = {name: free_port() for name in ("AS_PORT", "EHR_PORT", "DOCTOR_PORT")}
        self.as_url, self.ehr_url, self.doctor_url = (
            f"http://127.0.0.1:{ports[name]}" for name in ("AS_PORT", "EHR_PORT", "DOCTOR_PORT")
        )
        keep = ("PATH", "HOME", "LANG")
        env = {k: v for k, v in os.environ.items() if k in keep}
        env.update(
            {name: str(port) for name, port in ports.items()},
            MQTT_PORT=str(free_port()),
            AS_ISSUER=self.as_url,
            EHR_URL=self.ehr_url,
            DOCTOR_URL=self.doctor_url,
            WORKERS=str(workers),
            AS_DATABASE_URL=database_urls["as"],
            EHR_DATABASE_URL=database_urls["ehr"],
            DOCTOR_DATABASE_URL=database_urls["doctor"],
        )
        self.env = env
        self.log = directory / "demo.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uma_demo.launch"],
                cwd=directory,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 120
        while READY not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the demo did not start:\n" + self.log.read_text()[-3000:])
            time.sleep(0.3)

    def gunicorns(self) -> dict[str, list[int]]:
        """Each app's gunicorn master and workers, by the app's module."""
        found = defaultdict(list)
        for pid, command in _descendants(self.process.pid):
            for app in ("authz_server", "records_server", "doctor_client"):
                if "gunicorn" in command and f"{app}.wsgi" in command:
                    found[app].append(pid)
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)


def _descendants(root: int) -> list[tuple[int, str]]:
    children = defaultdict(list)
    commands = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        parent = int(stat.rpartition(")")[2].split()[1])
        children[parent].append(int(entry))
        commands[int(entry)] = command
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            found.append((child, commands[child]))
            todo.append(child)
    return found


def add_doctors(as_database_url: str, count: int) -> list[str]:
    """Accounts ``load-doctor-NN`` in the group ``load-test`` (password = username)."""
    from authz_server import create_app, db
    from authz_server.seed import ensure_person

    app = create_app({"DATABASE_URL": as_database_url, "MIGRATE_ON_START": True})
    names = [f"load-doctor-{n:02d}" for n in range(1, count + 1)]
    with app.app_context():
        session = db.session()
        for name in names:
            ensure_person(
                session, name, f"Dr. {name}", f"{name}@load.example", [GROUP], "pbkdf2:sha256"
            )
        session.commit()
    app.extensions["authz_db"].engine.dispose()
    return names


def alice_shares_everything(demo: Demo) -> dict[str, str]:
    """Alice links her EHR, waits for the monitor's feed, and shares all with the group.
    Returns the EHR URI of each resource by kind (history, labs, prescriptions, feed)."""
    alice = Browser("alice")
    page = alice.through_the_as(alice.get(demo.ehr_url + "/login"))
    page = alice.through_the_as(alice.submit(page, "/protect"))
    assert alice.form(page, "/unlink"), "Alice's records did not get protected"
    deadline = time.monotonic() + 60
    while True:
        directory = alice.get(demo.ehr_url + "/api/patients/alice").json()
        uris = {r.get("record_set") or "feed": r["uri"] for r in directory["resources"]}
        if "feed" in uris and all(r["protected"] for r in directory["resources"]):
            break
        assert time.monotonic() < deadline, f"the feed never came online: {directory}"
        time.sleep(1)
    alice.through_the_as(alice.get(demo.as_url + "/console/"))
    token = alice.get(demo.as_url + "/api/owner/session").json()["csrf_token"]
    by_scopes = defaultdict(list)  # the feed has read only; the record sets read and write
    for resource in alice.get(demo.as_url + "/api/owner/resources").json():
        by_scopes[tuple(resource["scopes"])].append(resource["id"])
    for scopes, resources in by_scopes.items():
        shared = alice.post(
            demo.as_url + "/api/owner/policies",
            json={
                "subject": {"type": "group", "name": GROUP},
                "resources": resources,
                "scopes": list(scopes),
            },
            headers={"X-CSRFToken": token},
        )
        assert shared.status_code == 201, shared.text
    return uris


class Doctor:
    """One doctor's browser, signed in to the doctor app, and what it measured."""

    def __init__(self, name: str, demo: Demo, uris: dict[str, str], seed: int):
        self.browser = Browser(name)
        self.demo, self.uris = demo, uris
        self.random = random.Random(seed)
        self.samples: list[tuple[str, float, bool]] = []
        self.errors: Counter = Counter()
        self.notes = 0
        page = self.browser.through_the_as(self.browser.get(demo.doctor_url + "/login"))
        assert self.browser.form(page, "/patients"), f"{name} could not sign in"
        self.note_token = None

    def click(self, kind: str) -> None:
        started = time.perf_counter()
        try:
            ok, why = getattr(self, "_" + kind)()
        except Exception as error:  # noqa: BLE001 - any failure is an error of the run
            ok, why = False, type(error).__name__
        self.samples.append((kind, time.perf_counter() - started, ok))
        if not ok:
            self.errors[f"{kind}: {why}"] += 1

    def _get(self, uri: str, **params):
        return self.browser.get(
            self.demo.doctor_url + "/open", params={"url": uri, **params}, allow_redirects=False
        )

    def _open(self):
        name = self.random.choice(["history", "labs", "prescriptions"])
        page = self._get(self.uris[name], title=name)
        if page.status_code == 200 and "read with your UMA token" in page.text:
            if name == "history" and self.note_token is None:
                found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text)
                self.note_token = found and found.group(1)
            return True, ""
        return False, f"{page.status_code} {_title(page.text)}"

    def _feed(self, **params):
        page = self._get(self.uris["feed"], title="feed", **params)
        if page.status_code == 200 and "readings ·" in page.text:
            return True, ""
        return False, f"{page.status_code} {_title(page.text)}"

    def _poll(self):
        return self._feed(auto="1")

    def _note(self):
        if self.note_token is None:
            ok, why = self._open_history()
            if not ok:
                return ok, why
        answer = self.browser.post(
            self.demo.doctor_url + "/note",
            params={"url": self.uris["history"]},
            data={
                "csrf_token": self.note_token,
                "title": "Load test",
                "text": "Blood pressure checked; no change.",
            },
            allow_redirects=False,
        )
        if answer.status_code == 302 and "/open" in answer.headers.get("Location", ""):
            self.notes += 1
            return True, ""
        return False, f"{answer.status_code} {_title(answer.text)}"

    def _open_history(self):
        page = self._get(self.uris["history"], title="history")
        found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text)
        self.note_token = found and found.group(1)
        return bool(self.note_token), f"{page.status_code} {_title(page.text)}"


def _title(html: str) -> str:
    found = re.search(r"<h1[^>]*>(.*?)</h1>", html, re.S)
    return " ".join(re.sub(r"<[^>]+>", "", found.group(1)).split()) if found else ""


def percentile(values: list[float], share: float) -> float:
    """Nearest rank, in milliseconds."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))] * 1000


def notes_stored(ehr_database_url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(ehr_database_url)
    with engine.connect() as connection:
        count = connection.execute(
            text("SELECT count(*) FROM ehr_entries WHERE resource_type = 'DocumentReference'")
        ).scalar_one()
    engine.dispose()
    return int(count)


def run(backend: str, doctors: int, requests_each: int, workers: int) -> dict:
    scratch = ScratchDatabase(backend, "uma-bench-load", "as.db")
    directory = Path(scratch.tmpdir)
    if backend == "sqlite":
        urls = {app: f"sqlite:///{directory}/{app}.db" for app in ("as", "ehr", "doctor")}
    else:
        urls = dict.fromkeys(("as", "ehr", "doctor"), scratch.url)
    demo = None
    try:
        print(f"[{backend}] starting the demo ({workers} workers per app) …", flush=True)
        demo = Demo(directory, urls, workers)
        names = add_doctors(urls["as"], doctors)
        uris = alice_shares_everything(demo)
        notes_before = notes_stored(urls["ehr"])
        print(f"[{backend}] {doctors} doctors sign in …", flush=True)
        team = [Doctor(name, demo, uris, seed) for seed, name in enumerate(names)]
        kinds = [kind for kind, weight in MIX for _ in range(weight)]

        def work(doctor: Doctor) -> None:
            for _ in range(requests_each):
                doctor.click(doctor.random.choice(kinds))

        apps = demo.gunicorns()
        pids = {app: pids for app, pids in apps.items()}
        cpu_before = {app: sum(cpu_seconds(p) for p in ps) for app, ps in pids.items()}
        pg_before, own_before = postgres_cpu_seconds(), time.process_time()
        busy_before, total_before = machine_cpu_seconds()
        print(f"[{backend}] {doctors} × {requests_each} requests …", flush=True)
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=doctors) as pool:
            list(pool.map(work, team))
        elapsed = time.perf_counter() - started
        busy_after, total_after = machine_cpu_seconds()
        cores = {
            app: (sum(cpu_seconds(p) for p in ps) - cpu_before[app]) / elapsed
            for app, ps in pids.items()
        }
        cores["postgres"] = (postgres_cpu_seconds() - pg_before) / elapsed
        cores["load generator"] = (time.process_time() - own_before) / elapsed
        cores["machine"] = (busy_after - busy_before) / elapsed
        cores["machine of"] = (total_after - total_before) / elapsed
        samples = [s for doctor in team for s in doctor.samples]
        errors = sum((doctor.errors for doctor in team), Counter())
        notes_sent = sum(doctor.notes for doctor in team)
        stored = notes_stored(urls["ehr"]) - notes_before
        if stored != notes_sent:
            errors[f"note: {notes_sent} acknowledged, {stored} stored"] += abs(notes_sent - stored)
        log = demo.log.read_text(errors="replace")
        trouble = Counter(match.group(0) for match in TROUBLE.finditer(log))
        return {
            "backend": scratch.version(),
            "elapsed": elapsed,
            "samples": samples,
            "errors": errors,
            "trouble": trouble,
            "cores": cores,
            "notes": stored,
        }
    finally:
        if demo is not None:
            demo.stop()
        scratch.drop()


def report(result: dict, doctors: int, requests_each: int, workers: int) -> str:
    samples = result["samples"]
    lines = [
        f"### {result['backend']}: {doctors} doctors × {requests_each} requests, WORKERS={workers}",
        "",
        "| click | requests | errors | p50 ms | p99 ms |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for kind, _weight in (*MIX, ("all", 0)):
        chosen = [s for s in samples if kind == "all" or s[0] == kind]
        times = [s[1] for s in chosen]
        failed = sum(1 for s in chosen if not s[2])
        p50, p99 = percentile(times, 0.50), percentile(times, 0.99)
        lines.append(f"| {kind} | {len(chosen)} | {failed} | {p50:.0f} | {p99:.0f} |")
    cores = result["cores"]
    lines += [
        "",
        f"{len(samples) / result['elapsed']:.0f} requests/s over {result['elapsed']:.0f} s; "
        f"{result['notes']} notes stored.",
        "",
        "CPU, in cores (the machine has "
        f"{cores['machine of']:.0f}): "
        + ", ".join(
            f"{name} {value:.2f}"
            for name, value in cores.items()
            if name not in ("machine", "machine of")
        )
        + f"; the whole machine {cores['machine']:.2f}.",
        "",
        "Errors: "
        + (", ".join(f"{why} × {n}" for why, n in result["errors"].items()) or "none")
        + ". Server log: "
        + (", ".join(f"{what!r} × {n}" for what, n in result["trouble"].items()) or "clean")
        + ".",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--doctors", type=int, default=50)
    parser.add_argument("--requests", type=int, default=1000, help="per doctor")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers per app")
    parser.add_argument("--markdown", type=Path, help="also write the markdown here")
    args = parser.parse_args(argv)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    command = " ".join(["bench/load.py", *(argv or sys.argv[1:])])
    commit = git("rev-parse", "--short", "HEAD")
    blocks = [
        f"Machine: {cpu_model()}, {os.cpu_count()} cores; commit {commit}; "
        f"command: `.venv/bin/python {command}`"
    ]
    for backend in backends:
        result = run(backend, args.doctors, args.requests, args.workers)
        block = report(result, args.doctors, args.requests, args.workers)
        print("\n" + block + "\n", flush=True)
        blocks.append(block)
    if args.markdown:
        args.markdown.write_text("\n\n".join(blocks) + "\n")
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "load"
    sys.exit(main())
