"""What the benchmarks read about the machine they run on, and the scratch databases they use.

Shared by bench/uma_grant.py and bench/ingest.py so that both count CPU, name the machine and
the commit, and make and drop their databases the same way: their figures end up side by
side in BENCHMARKS.md. Imported as a sibling module: the scripts run as
``python bench/<script>.py``, which puts bench/ first on sys.path.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------
# /proc: CPU seconds of a process, of PostgreSQL, of the whole machine
# --------------------------------------------------------------------------------------


def _stat_cpu_seconds(after_name: str) -> float:
    """utime + stime from /proc/<pid>/stat, given what follows the ")" closing the command
    name (the name may hold spaces and brackets, so only the text after it is split)."""
    fields = after_name.split()
    # After the ")" the fields start at field 3 (state); utime, stime are fields 14, 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; 0 once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    return _stat_cpu_seconds(raw.rpartition(")")[2])


def postgres_cpu_seconds() -> float:
    """CPU seconds of every PostgreSQL process on this machine, ours and anyone else's: the
    server forks a backend per connection, so no single pid covers it (SQLite, by contrast,
    runs inside the app's own processes)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            head, _, tail = Path(f"/proc/{entry}/stat").read_text().rpartition(")")
        except OSError:
            continue
        if head.endswith("(postgres"):
            total += _stat_cpu_seconds(tail)
    return total


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of all CPUs since boot, from /proc/stat. Busy covers the
    kernel and every process, so what the processes a bench names do not explain went to
    something else on the machine."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already inside user time
    return (total - idle) / CLK_TCK, total / CLK_TCK


# --------------------------------------------------------------------------------------
# What a report says about the run: CPU model, commit, package versions
# --------------------------------------------------------------------------------------


def cpu_model(unknown: str = "unknown") -> str:
    """The CPU's model name from /proc/cpuinfo: figures only compare on the same CPU."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return unknown


def git(*args: str) -> str | None:
    """What a git command prints in the checkout, stripped; None when git cannot run (not
    installed, or no answer in 5 s), so a report still gets written, without the commit."""
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed versions of these distributions, in the order given; those not installed
    are left out, and each report says in its own way that they are missing."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


# --------------------------------------------------------------------------------------
# Servers and databases the bench starts
# --------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, picked by the kernel, so that a bench's servers
    never collide with a running one (or with another bench)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_admin(statement: str) -> None:
    """One statement on the maintenance database, in autocommit: CREATE and DROP DATABASE
    refuse to run inside a transaction."""
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(statement))
    finally:
        admin.dispose()


class ScratchDatabase:
    """A fresh database for one run, gone afterwards: a run measures only data it made and
    never touches anyone else's.

    SQLite: the file ``sqlite_file`` in a new temporary directory ``<label>-…``. PostgreSQL
    (127.0.0.1:5432, trust auth): a database ``<label, - as _>_<random hex>`` of its own; the
    temporary directory exists too, for the logs of the processes the bench starts.
    """

    def __init__(self, backend: str, label: str, sqlite_file: str):
        self.backend = backend
        self.tmpdir = tempfile.mkdtemp(prefix=f"{label}-")
        self.pg_name: str | None = None
        if backend == "sqlite":
            self.url = f"sqlite:///{self.tmpdir}/{sqlite_file}"
        else:
            self.pg_name = f"{label.replace('-', '_')}_{secrets.token_hex(5)}"
            _pg_admin(f'CREATE DATABASE "{self.pg_name}"')
            self.url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{self.pg_name}"

    def version(self) -> str:
        """``SQLite 3.x`` or ``PostgreSQL 16.x``: the engine is part of what is measured."""
        if self.backend == "sqlite":
            return f"SQLite {sqlite3.sqlite_version}"
        from sqlalchemy import create_engine, text

        engine = create_engine(self.url)
        with engine.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar()
        engine.dispose()
        return f"PostgreSQL {version.split()[0]}"

    def drop(self) -> None:
        """Drop the database even if a server the bench started still holds connections to
        it (FORCE ends them), and remove the temporary directory."""
        if self.pg_name:
            _pg_admin(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
        shutil.rmtree(self.tmpdir, ignore_errors=True)
