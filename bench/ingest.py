"""Benchmark of device ingestion: MQTT publish → committed row in the EHR database.

For each backend (SQLite file, scratch PostgreSQL database) and each broker (the embedded
amqtt broker; a private Mosquitto with its default limits; the same Mosquitto tuned), it:

1. creates a fresh EHR database with the app's own code (create_app, seed_demo) and
   provisions --devices monitors to alice;
2. starts the broker, then the EHR's ingestion as production runs it, in its own process:
   ``python -m records_server.ingest --broker mqtt://127.0.0.1:PORT --client-id ...`` with
   ``EHR_DATABASE_URL``;
3. starts --publishers processes, each holding its share of the devices: one paho client per
   device (clean session, MQTT 3.1.1), the wire payloads of device_sim.wire prepared before
   the clock starts, seq 1..N/M per device, QoS 1 with --window readings un-acked per device;
   every device announces itself (retained) and the bench waits until the EHR has seen
   every announce;
4. releases the burst and polls the database until it holds all N readings (or nothing new
   arrives for --stall seconds, or --timeout passes), sampling the ingestor's RSS at the
   start, at every 100,000 readings stored and at the end;
5. counts lost (N - distinct (device, seq) stored) and duplicated (rows - distinct), stops
   the ingestor (SIGTERM: it commits and acknowledges what it holds) and reads its tally of
   messages received and redelivered.

A benchmark, not a test: it asserts nothing and prints a table (and, with --markdown FILE,
a block for BENCHMARKS.md). Every wait is bounded; all traffic is on 127.0.0.1.

    .venv/bin/python bench/ingest.py                               # 50,000 readings, all legs
    .venv/bin/python bench/ingest.py --backends sqlite --brokers mosquitto-tuned \\
        --readings 1000000                                          # the memory run
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from machine import (
    REPO,
    ScratchDatabase,
    cpu_model,
    cpu_seconds,
    free_port,
    git,
    machine_cpu_seconds,
    package_versions,
    postgres_cpu_seconds,
)

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
PAGE = os.sysconf("SC_PAGE_SIZE")
BROKERS = ("amqtt", "mosquitto", "mosquitto-queue", "mosquitto-tuned")
BACKENDS = ("sqlite", "postgresql")
RSS_EVERY = 100_000
# Mosquitto 2.0's defaults (what docker-compose.yml runs) and the tuned leg's settings.
MOSQUITTO_DEFAULT = {"max_inflight_messages": 20, "max_queued_messages": 1000}


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------------------
# /proc: RSS, load (CPU seconds come from machine.py)
# --------------------------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20
    except OSError:
        return float("nan")


def hwm_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


# --------------------------------------------------------------------------------------
# Databases
# --------------------------------------------------------------------------------------


class EhrDatabase(ScratchDatabase):
    """A fresh EHR database: ehr.db in a temp dir (which also takes the brokers' and the
    ingestor's logs), or uma_bench_ingest_<hex> on PG."""

    def __init__(self, backend: str):
        super().__init__(backend, label="uma-bench-ingest", sqlite_file="ehr.db")

    def seed(self, device_ids: list[str]) -> None:
        from records_server import create_app
        from records_server.seed import provision, seed_demo

        app = create_app(
            {
                "MIGRATE_ON_START": True,
                "DATABASE_URL": self.url,
                "SYNC_ON_START": False,
                "SECRET_KEY": "bench",
                "AS_ISSUER": "http://127.0.0.1:9",
            }
        )
        database = app.extensions["ehr_db"]
        with app.app_context():
            session = database.scoped()
            seed_demo(session)
            for device_id in device_ids:
                provision(session, device_id, "alice")
            session.commit()
        database.scoped.remove()
        database.engine.dispose()

    def connect(self):
        """A plain DB-API connection for the poller (no ORM in the measuring loop)."""
        if self.backend == "sqlite":
            return sqlite3.connect(self.url.removeprefix("sqlite:///"), timeout=30)
        import psycopg

        return psycopg.connect(
            f"host=127.0.0.1 port=5432 user=postgres dbname={self.pg_name}", autocommit=True
        )


def query(conn, sql: str, params=()):
    cursor = conn.cursor()
    cursor.execute(sql if isinstance(conn, sqlite3.Connection) else sql.replace("?", "%s"), params)
    row = cursor.fetchone()
    cursor.close()
    return row


# --------------------------------------------------------------------------------------
# Brokers
# --------------------------------------------------------------------------------------


class BrokerProcess:
    """amqtt (python -m uma_demo.broker) or a private Mosquitto, in a process of its own."""

    def __init__(self, kind: str, tmp: str, tuned_inflight: int, tuned_queued: int):
        self.kind = kind
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.log = open(os.path.join(tmp, f"{kind}.log"), "w")
        if kind == "amqtt":
            command = [sys.executable, "-m", "uma_demo.broker", "--port", str(self.port)]
            self.settings = "amqtt 0.12 defaults (in memory)"
        else:
            limits = dict(MOSQUITTO_DEFAULT)
            if kind == "mosquitto-queue":  # the default in-flight limit, no queue limit
                limits["max_queued_messages"] = tuned_queued
            elif kind == "mosquitto-tuned":
                limits = {
                    "max_inflight_messages": tuned_inflight,
                    "max_queued_messages": tuned_queued,
                }
            config = os.path.join(tmp, f"{kind}.conf")
            Path(config).write_text(
                f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                + "".join(f"{k} {v}\n" for k, v in limits.items())
            )
            command = [MOSQUITTO, "-c", config]
            self.settings = ", ".join(f"{k} {v}" for k, v in limits.items())
        self.process = subprocess.Popen(
            command, cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 15
        while not listening(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{kind} did not start; see {self.log.name}")
            time.sleep(0.05)
        time.sleep(0.2)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


class IngestorProcess:
    """python -m records_server.ingest, as production runs it; its log goes to a file."""

    STOPPED = re.compile(
        r"ingestion stopped: (?P<stored>\d+) stored, (?P<dropped>\d+) dropped"
        r"(?:, (?P<received>\d+) messages received, (?P<redelivered>\d+) flagged DUP)?"
    )

    def __init__(self, database_url: str, broker_url: str, tmp: str):
        self.log_path = os.path.join(tmp, "ingest.log")
        self.log = open(self.log_path, "w")
        env = dict(
            os.environ,
            EHR_DATABASE_URL=database_url,
            AS_ISSUER="http://127.0.0.1:9",
            EHR_SECRET_KEY="bench",
            PYTHONUNBUFFERED="1",
        )
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "records_server.ingest",
                "--broker",
                broker_url,
                "--client-id",
                f"bench-ingest-{secrets.token_hex(4)}",
            ],
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.wait_log("connected to mqtt://", 30)

    @property
    def pid(self) -> int:
        return self.process.pid

    def text(self) -> str:
        return Path(self.log_path).read_text(errors="replace")

    def wait_log(self, needle: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ingestor: no {needle!r} in its log:\n{self.text()[-3000:]}")
            time.sleep(0.05)

    def stop(self) -> dict:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        match = self.STOPPED.search(self.text())
        tally = {k: int(v) for k, v in (match.groupdict() if match else {}).items() if v}
        tally["warnings"] = self.text().count(" dropped ") + self.text().count("could not store")
        return tally


# --------------------------------------------------------------------------------------
# Publishers (separate processes, so their CPU is counted apart)
# --------------------------------------------------------------------------------------


def publisher_main(port, device_ids, per_device, window, ready, go, results) -> None:
    """One process: a paho client per device, payloads prepared first, QoS 1, a window."""
    import paho.mqtt.client as mqtt

    from device_sim import wire
    from device_sim.readings import ReadingGenerator

    start = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    devices = []
    for device_id in device_ids:
        generator = ReadingGenerator(seed=hash(device_id) & 0xFFFF, first_seq=1)
        payloads = [
            wire.reading_payload(generator.measure(start + dt.timedelta(seconds=i)))
            for i in range(per_device)
        ]
        state = {
            "id": device_id,
            "acked": 0,
            "connects": 0,
            "disconnects": 0,
            "last": 0.0,
            "window": threading.Semaphore(window),
            "announced": threading.Event(),
            "payloads": payloads,
            "announce_mid": None,
        }

        def on_connect(client, userdata, flags, rc, props, state=state):
            state["connects"] += 1

        def on_disconnect(client, userdata, flags, rc, props, state=state):
            state["disconnects"] += 1

        def on_publish(client, userdata, mid, rc, props, state=state):
            if mid == state["announce_mid"]:
                state["announced"].set()
                return
            state["acked"] += 1
            state["last"] = time.monotonic()
            state["window"].release()

        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=device_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        client.max_inflight_messages_set(0)  # the window above bounds what is in flight
        client.max_queued_messages_set(0)
        client.on_connect, client.on_disconnect, client.on_publish = (
            on_connect,
            on_disconnect,
            on_publish,
        )
        client.connect("127.0.0.1", port, keepalive=60)
        client.loop_start()
        state["client"] = client
        devices.append(state)
    for state in devices:
        info = state["client"].publish(
            wire.announce_topic(state["id"]),
            wire.announce_payload(state["id"], "alice"),
            qos=1,
            retain=True,
        )
        state["announce_mid"] = info.mid
        if info.is_published():
            state["announced"].set()
    for state in devices:
        state["announced"].wait(30)
    ready.put(os.getpid())
    go.wait()

    def burst(state):
        client, topic, sem = state["client"], wire.readings_topic(state["id"]), state["window"]
        for payload in state["payloads"]:
            sem.acquire()
            client.publish(topic, payload, qos=1)
        state["payloads"] = None

    threads = [threading.Thread(target=burst, args=(s,)) for s in devices]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    deadline = time.monotonic() + 600
    while any(s["acked"] < per_device for s in devices) and time.monotonic() < deadline:
        time.sleep(0.02)
    for state in devices:
        state["client"].disconnect()
        state["client"].loop_stop()
    results.put(
        [{k: s[k] for k in ("id", "acked", "connects", "disconnects", "last")} for s in devices]
    )


# --------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------


@dataclass
class Result:
    backend: str
    broker: str
    broker_settings: str
    readings: int
    devices: int
    seconds: float = 0.0  # first publish → last row committed (or the stall)
    stored_rows: int = 0
    distinct: int = 0
    lost: int = 0
    duplicated: int = 0
    redelivered: int | None = None  # messages the ingestor received flagged DUP
    received: int | None = None
    puback_seconds: float = 0.0  # first publish → last PUBACK from the broker
    acked: int = 0
    reconnects: int = 0
    complete: bool = False
    rss: list[tuple[int, float]] = field(default_factory=list)  # (stored so far, MiB)
    hwm: float = 0.0
    cpu: dict = field(default_factory=dict)  # cores over the burst
    load_before: float = 0.0
    load_after: float = 0.0

    @property
    def rate(self) -> float:
        return self.distinct / self.seconds if self.seconds else 0.0


def run_one(backend: str, broker_kind: str, args) -> Result:
    per_device = args.readings // args.devices
    total = per_device * args.devices
    device_ids = [f"bench-bp-{i:03d}" for i in range(args.devices)]
    database = EhrDatabase(backend)
    broker = ingestor = None
    procs = []
    result = Result(backend, broker_kind, "", total, args.devices)
    try:
        database.seed(device_ids)
        broker = BrokerProcess(broker_kind, database.tmpdir, args.tuned_inflight, args.tuned_queued)
        result.broker_settings = broker.settings
        ingestor = IngestorProcess(database.url, broker.url, database.tmpdir)
        conn = database.connect()
        device_pk = dict(
            (row[0], row[1]) for row in _all(conn, "SELECT device_id, id FROM ehr_devices")
        )

        ctx = mp.get_context("fork")
        ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
        shares = [device_ids[i :: args.publishers] for i in range(args.publishers)]
        for share in (s for s in shares if s):
            proc = ctx.Process(
                target=publisher_main,
                daemon=True,
                args=(broker.port, share, per_device, args.window, ready, go, results),
            )
            proc.start()
            procs.append(proc)
        pub_pids = [ready.get(timeout=120) for _ in procs]
        # Every announce seen by the EHR before the clock starts.
        deadline = time.monotonic() + 30
        while (
            query(conn, "SELECT count(*) FROM ehr_devices WHERE announced_at IS NOT NULL")[0]
            < args.devices
            and time.monotonic() < deadline
        ):
            time.sleep(0.1)

        result.load_before = loadavg()
        pids = {"ingestor": [ingestor.pid], "broker": [broker.pid], "publishers": pub_pids}
        cpu0 = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
        pg0, (busy0, _), me0 = (
            postgres_cpu_seconds(),
            machine_cpu_seconds(),
            cpu_seconds(os.getpid()),
        )
        result.rss.append((0, rss_mib(ingestor.pid)))
        go.set()
        t0 = time.monotonic()

        def snapshot():
            return (
                {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()},
                postgres_cpu_seconds() if backend == "postgresql" else 0.0,
                machine_cpu_seconds()[0],
                cpu_seconds(os.getpid()),
            )

        count, last_id, next_rss = 0, 0, RSS_EVERY
        last_growth = t0
        at_growth = snapshot()  # CPU is counted up to the last new row, not over a stall
        t_done = None
        while True:
            time.sleep(args.poll)
            new, top = query(
                conn, "SELECT count(*), max(id) FROM ehr_readings WHERE id > ?", (last_id,)
            )
            now = time.monotonic()
            if new:
                count += new
                last_id = top
                last_growth = now
                at_growth = snapshot()
            while count >= next_rss:
                result.rss.append((next_rss, rss_mib(ingestor.pid)))
                next_rss += RSS_EVERY
            if count >= total:
                t_done = now
                result.complete = True
                break
            if now - last_growth > args.stall or now - t0 > args.timeout:
                t_done = last_growth
                break
        result.seconds = t_done - t0
        procs1, pg1, busy1, me1 = at_growth
        wall = max(last_growth - t0, 1e-6)
        cpu = {k: (procs1[k] - cpu0[k]) / wall for k in pids}
        if backend == "postgresql":  # every postgres process: ours and anyone else's
            cpu["postgres"] = max(0.0, (pg1 - pg0) / wall)
        cpu["bench"] = (me1 - me0) / wall
        cpu["machine"] = (busy1 - busy0) / wall
        cpu["other"] = max(0.0, cpu["machine"] - sum(v for k, v in cpu.items() if k != "machine"))
        result.cpu = cpu
        result.load_after = loadavg()
        result.rss.append((count, rss_mib(ingestor.pid)))
        result.hwm = hwm_mib(ingestor.pid)

        stats = []
        for _ in procs:
            try:
                stats.extend(results.get(timeout=max(5.0, args.stall)))
            except Exception:
                break
        if stats:
            result.acked = sum(s["acked"] for s in stats)
            result.puback_seconds = max(s["last"] for s in stats) - t0
            result.reconnects = sum(s["connects"] - 1 for s in stats)
        time.sleep(0.5)
        rows = query(conn, "SELECT count(*) FROM ehr_readings")[0]
        # Per device over the unique index, so the check stays cheap on a million rows.
        # int(): PostgreSQL's sum() of counts is numeric, a Decimal that float arithmetic refuses.
        distinct = int(
            query(
                conn,
                "SELECT coalesce(sum(n), 0) FROM (SELECT count(DISTINCT seq) AS n"
                " FROM ehr_readings WHERE seq BETWEEN 1 AND ? GROUP BY device_pk) AS d",
                (per_device,),
            )[0]
        )
        result.stored_rows, result.distinct = rows, distinct
        result.lost = total - distinct
        result.duplicated = rows - distinct
        conn.close()
        tally = ingestor.stop()
        result.received = tally.get("received")
        result.redelivered = tally.get("redelivered")
        del device_pk
        return result
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
        if ingestor is not None and ingestor.process.poll() is None:
            ingestor.stop()
        if broker is not None:
            broker.stop()
        if args.keep:
            print(f"  kept {database.tmpdir}", flush=True)
        else:
            database.drop()


def _all(conn, sql):
    cursor = conn.cursor()
    cursor.execute(sql)
    rows = cursor.fetchall()
    cursor.close()
    return rows


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


def versions() -> dict:
    out = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    out.update(package_versions(("paho-mqtt", "amqtt", "SQLAlchemy", "psycopg", "Flask")))
    try:
        out["mosquitto"] = (
            subprocess.run([MOSQUITTO, "-h"], capture_output=True, text=True, timeout=5)
            .stdout.split("\n")[0]
            .split()[-1]
        )
    except (OSError, subprocess.SubprocessError, IndexError):
        pass
    try:
        import psycopg

        with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres") as c:
            out["postgresql"] = c.execute("SHOW server_version").fetchone()[0].split()[0]
    except Exception:
        pass
    return out


def commit() -> str:
    head = git("rev-parse", "--short", "HEAD")
    return "?" if head is None else head


def describe_machine() -> str:
    return f"{os.cpu_count()} CPU ({cpu_model('?')}), Linux {platform.release()}"


def fmt_rss(result: Result) -> str:
    return " → ".join(f"{mib:.0f}" for _, mib in result.rss)


def table(results: list[Result], v: dict) -> str:
    backend_name = {
        "sqlite": f"SQLite {v.get('sqlite', '')}",
        "postgresql": f"PostgreSQL {v.get('postgresql', '')}",
    }
    lines = [
        "| backend | broker | readings | readings/s | s | lost | duplicated | DUP received "
        "| PUBACK s | ingestor RSS MiB (start → … → end; peak) | load before/after |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for r in results:
        dup = "?" if r.redelivered is None else f"{r.redelivered:,}"
        note = "" if r.complete else " (stalled)"
        lines.append(
            f"| {backend_name[r.backend]} | {r.broker} | {r.readings:,} | {r.rate:,.0f}{note} "
            f"| {r.seconds:.1f} | {r.lost:,} | {r.duplicated:,} | {dup} | {r.puback_seconds:.1f} "
            f"| {fmt_rss(r)}; {r.hwm:.0f} | {r.load_before:.2f} / {r.load_after:.2f} |"
        )
    lines += [
        "",
        "CPU from the first publish to the last new row, in cores of 2 (postgres = every "
        "PostgreSQL process on the machine; other = kernel and other processes):",
        "",
        "| backend | broker | ingestor | broker | publishers | postgres | bench | other "
        "| machine |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        c = r.cpu
        pg = f"{c['postgres']:.2f}" if "postgres" in c else "–"
        lines.append(
            f"| {backend_name[r.backend]} | {r.broker} | {c.get('ingestor', 0):.2f} "
            f"| {c.get('broker', 0):.2f} | {c.get('publishers', 0):.2f} | {pg} "
            f"| {c.get('bench', 0):.2f} | {c.get('other', 0):.2f} | {c.get('machine', 0):.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=int, default=50_000, help="N (default %(default)s)")
    parser.add_argument("--devices", type=int, default=10, help="M (default %(default)s)")
    parser.add_argument(
        "--publishers",
        type=int,
        default=2,
        help="publisher processes sharing the devices (default %(default)s)",
    )
    parser.add_argument(
        "--window", type=int, default=100, help="un-acked readings per device (default %(default)s)"
    )
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--brokers",
        default=",".join(BROKERS),
        help="amqtt, mosquitto (Mosquitto's default limits), mosquitto-queue (default "
        "in-flight limit, --tuned-queued), mosquitto-tuned (--tuned-inflight, "
        "--tuned-queued); default: all",
    )
    parser.add_argument(
        "--tuned-inflight",
        type=int,
        default=1000,
        help="max_inflight_messages of mosquitto-tuned (default %(default)s)",
    )
    parser.add_argument(
        "--tuned-queued",
        type=int,
        default=0,
        help="max_queued_messages of mosquitto-queue and -tuned; 0 = no limit "
        "(default %(default)s)",
    )
    parser.add_argument("--poll", type=float, default=0.1, help="DB poll interval, s")
    parser.add_argument(
        "--stall",
        type=float,
        default=15.0,
        help="give up after this many seconds without a new row",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="per run, s")
    parser.add_argument("--markdown", help="also write the report to this file")
    parser.add_argument("--keep", action="store_true", help="keep temp dirs (logs) for a look")
    args = parser.parse_args(argv)
    backends = [b for b in args.backends.split(",") if b]
    brokers = [b for b in args.brokers.split(",") if b]
    if set(backends) - set(BACKENDS) or set(brokers) - set(BROKERS):
        parser.error(f"backends from {BACKENDS}, brokers from {BROKERS}")

    started = dt.datetime.now(dt.UTC)
    v = versions()
    results = []
    for backend in backends:
        for broker in brokers:
            print(
                f"{backend} / {broker}: {args.readings:,} readings from {args.devices} devices"
                f" (load {loadavg():.2f})",
                flush=True,
            )
            r = run_one(backend, broker, args)
            results.append(r)
            print(
                f"  {r.rate:,.0f} readings/s over {r.seconds:.1f} s; lost {r.lost:,}, "
                f"duplicated {r.duplicated:,}, DUP received {r.redelivered}; "
                f"ingestor RSS {fmt_rss(r)} MiB (peak {r.hwm:.0f})"
                + ("" if r.complete else "  ** stalled **"),
                flush=True,
            )

    argv_text = " ".join(argv if argv is not None else sys.argv[1:])
    report = "\n".join(
        [
            f"### Run of {started:%Y-%m-%d %H:%M} UTC (commit {commit()})",
            "",
            "```sh",
            f".venv/bin/python bench/ingest.py {argv_text}".rstrip(),
            "```",
            "",
            f"- Machine: {describe_machine()}.",
            "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
            f"- {args.devices} devices in {args.publishers} publisher processes, QoS 1, at most "
            f"{args.window} un-acked readings per device; N/M readings each, seq 1..N/M; the "
            "ingestor is `python -m records_server.ingest` in its own process.",
            "- Brokers: "
            + "; ".join(
                f"{b}: {s}" for b, s in dict((r.broker, r.broker_settings) for r in results).items()
            )
            + ".",
            "- readings/s = distinct readings stored ÷ (first publish → the poll that saw the last"
            " row); PUBACK s = first publish → last PUBACK from the broker; DUP received ="
            " messages the ingestor received with the DUP flag (redeliveries).",
            "",
            table(results, v),
        ]
    )
    print()
    print(report)
    if args.markdown:
        Path(args.markdown).write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
