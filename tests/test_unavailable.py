"""A missing part (a broker, PostgreSQL, a compose CLI) skips a test on a developer's machine
and fails it in CI, because CI must run every leg."""

import pytest

from tests.conftest import unavailable


@pytest.mark.parametrize(
    "ci, outcome", [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_a_missing_part_fails_in_ci_and_skips_elsewhere(monkeypatch, ci, outcome):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="no broker"):
        unavailable("no broker")
