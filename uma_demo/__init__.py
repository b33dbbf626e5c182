"""Demo orchestration (launchers, the embedded broker). Only orchestrates: no app imports it."""
