"""The EHR's schema history: Alembic revisions in ``migrations/versions``."""

from pathlib import Path

from app_support.migrations import MigrationHistory

from . import models  # noqa: F401 - puts every table on Base.metadata
from .db import Base

MIGRATIONS = MigrationHistory(
    app="ehr",
    metadata=Base.metadata,
    versions=str(Path(__file__).with_name("migrations") / "versions"),
    upgrade_command="uma-health-ehr db upgrade",
)
