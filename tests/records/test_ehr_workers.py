"""The EHR as it runs in production: gunicorn with several workers sharing one database
(DESIGN.md "Where it grows"). Sessions, PATs and registrations must not depend on which
worker answers."""

import os

import pytest
import requests

from tests.authz.conftest import bearer
from tests.authz.test_uma_grant import share
from tests.conftest import gunicorn
from tests.records.conftest import Browser, protect
from tests.records.test_ehr_protection import challenge_of, record_sets, rpt_for

pytestmark = pytest.mark.live


@pytest.fixture
def gunicorn_ehr(apps, ehr_database_url, tmp_path):
    """Replace the in-process EHR by gunicorn, 3 workers, on the same port and database."""
    apps.stop_ehr()
    env = {
        **os.environ,
        "AS_ISSUER": apps.as_server.url,
        "EHR_URL": apps.ehr_url,
        "EHR_DATABASE_URL": ehr_database_url,
    }
    with gunicorn("records_server.wsgi:app", apps.ehr_port, env, tmp_path, "/healthz") as proc:
        yield proc
    apps.ehr_app.extensions["ehr_db"].engine.dispose()


def test_the_story_works_across_workers(apps, gunicorn_ehr):
    """Sign-in state, the link and the introspection cache live in the database: every
    request below may land on a different worker (connections are not kept alive)."""
    browser = Browser()
    browser.headers["Connection"] = "close"
    page = browser.through_the_as(browser.get(apps.ehr_url + "/login"), "alice")
    assert "Protect my records" in page.text
    assert "now protected" in protect(browser, apps).text
    mapping = record_sets(apps)
    assert all(mapping.values())

    as_client = apps.as_app.test_client()
    share(as_client, {"type": "user", "username": "carol"}, [mapping["history"]])
    url = f"{apps.ehr_url}/api/patients/alice/records/history"
    ticket = challenge_of(requests.get(url, timeout=5))["ticket"]
    rpt = rpt_for(apps, ticket, "carol").json["access_token"]
    for _ in range(6):
        response = requests.get(url, headers={**bearer(rpt), "Connection": "close"}, timeout=5)
        assert response.status_code == 200
    for _ in range(3):
        assert "Protected." in browser.get(apps.ehr_url + "/").text
