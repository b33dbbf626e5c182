"""Schema migrations with Alembic: one history per app, each with its own version table, so
the three apps may share one PostgreSQL database (their table names never collide).

Every app's revisions live in ``<app>/migrations/versions``; the Alembic environment they run
in is ``app_support/alembic`` (one ``env.py`` for all three). An app's CLI and the demo
launcher run :meth:`MigrationHistory.upgrade` before serving; a served app only checks
(:meth:`MigrationHistory.mismatch`) and refuses to start on a database its code does not match.
"""

import contextlib
import fcntl
import functools
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection, Engine

ENVIRONMENT = str(Path(__file__).with_name("alembic"))


class SchemaMismatch(RuntimeError):
    """The database's schema is not the one this code was written for; the message is one
    line that names the command to run."""


@dataclass(frozen=True)
class MigrationHistory:
    """One app's migrations: its tables, its revisions and its version table."""

    app: str  # "authz", "ehr", "doctor": names the version table
    metadata: MetaData
    versions: str  # the folder of this app's revision files
    upgrade_command: str  # what an operator runs, e.g. "uma-health-as db upgrade"

    @property
    def version_table(self) -> str:
        return f"alembic_version_{self.app}"

    def config(self, connection: Connection | None = None) -> Config:
        config = Config()
        config.set_main_option("script_location", ENVIRONMENT)
        config.set_main_option("version_locations", self.versions)
        config.set_main_option("path_separator", "os")
        config.attributes["history"] = self
        config.attributes["connection"] = connection
        return config

    @functools.cached_property
    def script(self) -> ScriptDirectory:
        """The revision files, parsed once per process."""
        return ScriptDirectory.from_config(self.config())

    def head(self) -> str:
        heads = self.script.get_heads()
        if len(heads) != 1:
            raise SchemaMismatch(f"{self.app} migrations have {len(heads)} heads: merge them")
        return heads[0]

    def current(self, connection: Connection) -> str | None:
        context = MigrationContext.configure(connection, opts={"version_table": self.version_table})
        return context.get_current_revision()

    def owns_tables(self, connection: Connection) -> bool:
        """Whether any of this app's tables exist (a database made before Alembic has them
        and no version table)."""
        present = set(inspect(connection).get_table_names())
        return bool(present & set(self.metadata.tables))

    def mismatch(self, engine: Engine) -> str | None:
        """None when the database is at this code's head revision; otherwise one line saying
        what is wrong and which command mends it."""
        try:
            with engine.connect() as connection:
                current = self.current(connection)
        except Exception as error:  # noqa: BLE001 - any failure to read it is a mismatch
            return f"cannot read the {self.app} schema version ({type(error).__name__}: {error})"
        head = self.head()
        if current == head:
            return None
        if current is None:
            return f"the {self.app} database has no schema yet: run `{self.upgrade_command}`"
        if not self.knows(current):
            return self._unknown(current)
        return (
            f"the {self.app} database is at revision {current}, this code needs {head}: "
            f"run `{self.upgrade_command}`"
        )

    def knows(self, revision: str) -> bool:
        return revision in {script.revision for script in self.script.walk_revisions()}

    def _unknown(self, revision: str) -> str:
        return (
            f"the {self.app} database is at revision {revision}, which this code does not know "
            "(made by newer code?): run the newer code, or downgrade the database with it"
        )

    def check(self, engine: Engine) -> None:
        problem = self.mismatch(engine)
        if problem:
            raise SchemaMismatch(problem)

    def upgrade(self, engine: Engine, revision: str = "head") -> None:
        """Bring the database to ``revision``, one process at a time.

        An empty database gets today's tables from the models and is stamped at head, as
        Alembic's cookbook advises (the test suite proves the migrations give the same
        schema). A database made before Alembic runs every revision from the first, whose
        steps create only what is missing, so its data stays.
        """
        with migration_lock(engine, self.version_table):
            with engine.begin() as connection:
                current = self.current(connection)
                self._refuse_unknown(current)
                fresh = current is None and not self.owns_tables(connection)
                if fresh and revision == "head":
                    self.metadata.create_all(connection)
                    command.stamp(self.config(connection), "head")
                    return
                command.upgrade(self.config(connection), revision)

    def downgrade(self, engine: Engine, revision: str) -> None:
        with migration_lock(engine, self.version_table):
            with engine.begin() as connection:
                self._refuse_unknown(self.current(connection))
                command.downgrade(self.config(connection), revision)

    def _refuse_unknown(self, current: str | None) -> None:
        """Alembic would fail deep inside on a revision it cannot find; say what it means."""
        if current is not None and not self.knows(current):
            raise SchemaMismatch(self._unknown(current))

    def revision(self, engine: Engine, message: str, autogenerate: bool = True) -> None:
        """Write a new revision file, compared against the database at ``engine``."""
        with engine.begin() as connection:
            command.revision(self.config(connection), message, autogenerate=autogenerate)


@contextlib.contextmanager
def migration_lock(engine: Engine, name: str):
    """Hold an exclusive lock while migrating: two nodes (or a launcher and a CLI) starting at
    once must not both create the same tables.

    PostgreSQL: a session advisory lock, so every node on the server waits its turn. SQLite:
    an advisory file lock beside the database, since only processes of one machine share it.
    """
    if engine.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        with engine.connect() as holder:
            holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            holder.commit()
            try:
                yield
            finally:
                holder.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                holder.commit()
        return
    path = engine.url.database
    if engine.dialect.name != "sqlite" or not path or path == ":memory:":
        yield
        return
    with open(f"{os.path.abspath(path)}-migrate.lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def add_db_commands(subparsers, prog: str) -> None:
    """``<prog> db upgrade|downgrade|current|history|revision``: the app's migrations."""
    db = subparsers.add_parser("db", help="the database schema (Alembic migrations)")
    actions = db.add_subparsers(dest="db_command", required=True)
    upgrade = actions.add_parser("upgrade", help="migrate to a revision (default: head)")
    upgrade.add_argument("revision", nargs="?", default="head")
    downgrade = actions.add_parser("downgrade", help="migrate down, e.g. to -1")
    downgrade.add_argument("revision")
    actions.add_parser("current", help="the database's revision, and whether it is the head")
    actions.add_parser("history", help="every revision, newest first")
    revision = actions.add_parser(
        "revision", help="write a new revision from the models' difference to the database"
    )
    revision.add_argument("-m", "--message", required=True)
    revision.add_argument("--empty", action="store_true", help="no autogenerate")
    db.set_defaults(prog=prog)


def run_db_command(args, history: MigrationHistory, engine: Engine) -> int:
    if args.db_command == "upgrade":
        history.upgrade(engine, args.revision)
        print(f"{history.app} database at {current_of(history, engine)} (head {history.head()})")
    elif args.db_command == "downgrade":
        history.downgrade(engine, args.revision)
        print(f"{history.app} database at {current_of(history, engine)}")
    elif args.db_command == "current":
        print(current_of(history, engine))
        problem = history.mismatch(engine)
        if problem:
            print(problem)
            return 1
    elif args.db_command == "history":
        for script in history.script.walk_revisions():
            print(f"{script.revision}  {script.doc}")
    elif args.db_command == "revision":
        history.revision(engine, args.message, autogenerate=not args.empty)
    return 0


def current_of(history: MigrationHistory, engine: Engine) -> str:
    with engine.connect() as connection:
        return history.current(connection) or "<none>"


# Operations for revisions that must also run on a database made before Alembic, which
# already has some of what they create: each creates only what is missing.


def create_table_if_missing(name: str, *columns, **kwargs) -> None:
    from alembic import op

    if not inspect(op.get_bind()).has_table(name):
        op.create_table(name, *columns, **kwargs)


def create_index_if_missing(name: str, table: str, columns: list[str], **kwargs) -> None:
    from alembic import op

    if name not in {index["name"] for index in inspect(op.get_bind()).get_indexes(table)}:
        op.create_index(name, table, columns, **kwargs)


def wsgi_app(create_app, prog: str):
    """The app for gunicorn, or, on a database its code does not match, gunicorn's one-line
    refusal (an AppImportError stops the server instead of restarting workers forever)."""
    try:
        return create_app()
    except SchemaMismatch as error:
        from gunicorn.errors import AppImportError

        raise AppImportError(f"{prog}: {error}") from None


def run_db_cli(args, history: MigrationHistory, database_url: str) -> int:
    """The ``db`` command on the app's configured database, without building the app (which
    would refuse a database that needs this very command)."""
    from alembic.util import CommandError

    from .database import make_engine

    engine = make_engine(database_url)
    try:
        return run_db_command(args, history, engine)
    except (SchemaMismatch, CommandError) as error:
        return refuse(args.prog, error)
    finally:
        engine.dispose()


def refuse(prog: str, error: Exception) -> int:
    """A command's one-line answer to a schema it cannot work with (never a traceback)."""
    print(f"{prog}: {error}", file=sys.stderr)
    return 1


def health(history: MigrationHistory, engine: Engine) -> tuple[dict, int]:
    """``/healthz``: healthy only on the schema this code was written for, so the launcher and
    a load balancer see a mismatched database instead of pages that answer 500."""
    problem = history.mismatch(engine)
    if problem:
        return {"status": "schema mismatch", "problem": problem}, 503
    return {"status": "ok"}, 200
