"""The Alembic environment of every app: the app's history (app_support.migrations) arrives
in ``config.attributes`` with the connection to migrate."""

from alembic import context
from sqlalchemy import types

from app_support.migrations import MigrationHistory

history: MigrationHistory = context.config.attributes["history"]
connection = context.config.attributes["connection"]


def include_name(name, type_, parent_names) -> bool:
    """Compare only this app's tables: the others in a shared database belong to another
    app's history."""
    if type_ == "table":
        return name in history.metadata.tables
    return True


def render_item(type_, obj, autogen_context):
    """Write a column type the way the database sees it (``UTCDateTime`` is a
    ``DateTime(timezone=True)``), so a revision never imports the app's code."""
    if type_ == "type" and isinstance(obj, types.TypeDecorator):
        return f"sa.{obj.impl!r}"
    return False


context.configure(
    connection=connection,
    target_metadata=history.metadata,
    version_table=history.version_table,
    include_name=include_name,
    render_item=render_item,
    # SQLite alters a table by copying it; batch mode writes revisions that do so.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_server_default=True,
)
with context.begin_transaction():
    context.run_migrations()
