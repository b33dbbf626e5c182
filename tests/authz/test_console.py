"""Alice's console on the AS (issue 7): resources, Share, requests, who has access, history,
connected apps. Every form needs its CSRF token; an owner sees only her own rows."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.authz.conftest import RECORD, csrf_token, login
from tests.authz.test_uma_grant import LABS, ask_as, owner_call

FORM_ERROR = re.compile(r'class="flash error"[^>]*>([^<]+)<')


@pytest.fixture
def history(alice_pat, register):
    return register(alice_pat, RECORD)


@pytest.fixture
def labs(alice_pat, register):
    return register(alice_pat, LABS)


def signed_in(client, username="alice"):
    login(client, username)
    return client


def share(client, resources, subject_type, subject, scopes=("read",), duration="30d", until=""):
    page = client.get("/console/share", query_string=[("r", r) for r in resources])
    data = {
        "csrf_token": csrf_token(page.data),
        "resources": list(resources),
        "subject_type": subject_type,
        "subject": subject,
        "scopes": list(scopes),
        "duration": duration,
        "until": until,
    }
    return client.post("/console/share", data=data, follow_redirects=True)


def policies(client) -> list[dict]:
    return owner_call(client, "GET", "/api/owner/policies").json


def test_my_resources_grouped_by_server_with_who_has_access(client, history, labs):
    signed_in(client)
    page = client.get("/console/").data.decode()
    assert "Alice&#39;s EHR" in page  # the resource server's name heads the group
    assert "Alice&#39;s medical history" in page and "only you" in page
    share(client, [history], "user", "carol")
    page = client.get("/console/").data.decode()
    assert "Dr. Carol Physician (carol): read" in page


@pytest.mark.parametrize(
    "subject_type, subject, expected",
    [
        ("user", "bob", {"type": "user", "username": "bob"}),
        ("user", "bob@surgery.example", {"type": "user", "username": "bob"}),
        ("group", "surgery-center", {"type": "group", "name": "surgery-center"}),
        ("email_domain", "surgery.example", {"type": "email_domain", "domain": "surgery.example"}),
    ],
)
def test_share_with_a_person_a_group_or_a_domain(client, history, subject_type, subject, expected):
    signed_in(client)
    done = share(client, [history], subject_type, subject, ("read", "write"), "7d")
    assert b"Shared 1 resource" in done.data
    (policy,) = policies(client)
    assert policy["subject"] == expected and policy["scopes"] == ["read", "write"]
    expires = datetime.fromisoformat(policy["expires_at"])
    assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)


def test_share_several_resources_until_revoked_or_a_date(client, history, labs):
    signed_in(client)
    share(client, [history, labs], "user", "carol", duration="forever")
    until = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    share(client, [labs], "user", "dave", duration="custom", until=until)
    found = {p["subject"]["username"]: p for p in policies(client)}
    assert sorted(found["carol"]["resources"]) == sorted([history, labs])
    assert found["carol"]["expires_at"] is None
    assert found["dave"]["expires_at"].startswith(until + "T23:59:59")


@pytest.mark.parametrize(
    "subject_type, subject, scopes, duration, until, message",
    [
        ("user", "nobody", ("read",), "30d", "", "No such person"),
        ("group", "no-such-group", ("read",), "30d", "", "No such group"),
        ("email_domain", "nodot", ("read",), "30d", "", "must look like"),
        ("user", "carol", (), "30d", "", "Choose read, write or both"),
        ("user", "carol", ("read",), "custom", "", "Pick the date"),
        ("user", "carol", ("read",), "custom", "2020-01-01", "in the past"),
        ("user", "", ("read",), "30d", "", "Say who"),
    ],
)
def test_share_errors_are_shown_in_place(
    client, history, subject_type, subject, scopes, duration, until, message
):
    signed_in(client)
    page = share(client, [history], subject_type, subject, scopes, duration, until)
    assert page.status_code == 400
    assert message in " ".join(FORM_ERROR.findall(page.data.decode()))
    assert b"<h1>Share</h1>" in page.data  # the dialog again, not a dead end
    assert policies(client) == []


def test_pending_requests_share_and_deny_with_a_badge(client, alice_pat, history, labs):
    assert ask_as(client, alice_pat, history, "bob", ("read", "write")).json["error"] == (
        "request_submitted"
    )
    assert ask_as(client, alice_pat, labs, "mallory").json["error"] == "request_submitted"
    signed_in(client)
    page = client.get("/console/requests").data.decode()
    assert 'class="badge"' in page and ">2</span>" in page
    assert "Dr. Bob Surgeon" in page and "Doctor app" in page and "read and write" in page
    ids = {
        name: int(rid)
        for rid, name in re.findall(
            r'id="request-(\d+)">\s*<p><strong>[^<]*</strong> \((\w+),', page
        )
    }
    bob_id, mallory_id = ids["bob"], ids["mallory"]

    token = csrf_token(page)
    done = client.post(
        f"/console/requests/{bob_id}",
        data={
            f"r{bob_id}-csrf_token": token,  # prefixed forms prefix their token too
            f"r{bob_id}-scopes": ["read"],  # narrowed: read only
            f"r{bob_id}-duration": "1d",
            f"r{bob_id}-share": "Share",
        },
        follow_redirects=True,
    )
    assert b"Shared with bob" in done.data
    done = client.post(
        f"/console/requests/{mallory_id}",
        data={
            f"r{mallory_id}-csrf_token": token,
            f"r{mallory_id}-deny": "Deny",
            f"r{mallory_id}-duration": "30d",
        },
        follow_redirects=True,
    )
    assert b"Denied mallory" in done.data and b'class="badge"' not in done.data
    (policy,) = policies(client)
    assert policy["subject"]["username"] == "bob" and policy["scopes"] == ["read"]
    assert ask_as(client, alice_pat, labs, "mallory").json["error"] == "request_denied"


def test_policies_edit_and_revoke(client, alice_pat, history):
    signed_in(client)
    share(client, [history], "user", "carol", ("read", "write"))
    (policy,) = policies(client)
    signed_in(client)
    page = client.get("/console/policies").data.decode()
    assert "Dr. Carol Physician (carol)" in page
    pid = policy["id"]
    client.post(
        f"/console/policies/{pid}",
        data={
            f"p{pid}-csrf_token": csrf_token(page),
            f"p{pid}-scopes": ["read"],
            f"p{pid}-duration": "forever",
            f"p{pid}-save": "Save",
        },
    )
    (policy,) = policies(client)
    assert policy["scopes"] == ["read"] and policy["expires_at"] is None
    assert ask_as(client, alice_pat, history, "carol").status_code == 200
    signed_in(client)
    page = client.get("/console/policies").data.decode()
    client.post(
        f"/console/policies/{pid}",
        data={
            "csrf_token": csrf_token(page),
            f"p{pid}-duration": "30d",
            f"p{pid}-revoke": "Revoke",
        },
    )
    assert policies(client) == []
    assert ask_as(client, alice_pat, history, "carol").status_code == 403


def test_history_is_filtered_and_paginated(client, alice_pat, history):
    for _ in range(3):
        ask_as(client, alice_pat, history, "mallory")
    signed_in(client)
    share(client, [history], "user", "carol")
    for _ in range(26):
        ask_as(client, alice_pat, history, "carol")
    signed_in(client)
    page = client.get("/console/history").data.decode()
    assert "page 1 of 2" in page and "older" in page
    filtered = client.get("/console/history?requester=mallory").data.decode()
    assert "mallory" in filtered and "carol" not in filtered.split("<table")[1]
    granted = client.get("/console/history?outcome=granted&page=2").data.decode()
    assert "page 2 of 2" in granted


def test_connected_apps_and_disconnect(client, alice_pat, history):
    signed_in(client)
    page = client.get("/console/apps").data.decode()
    assert "Alice&#39;s EHR" in page and "1 resource(s)" in page
    done = client.post(
        "/console/apps/ehr/disconnect", data={"csrf_token": csrf_token(page)}, follow_redirects=True
    )
    assert b"Disconnected Alice&#39;s EHR" in done.data
    assert b"No app holds" in done.data
    rejected = client.get("/uma/resource_set", headers={"Authorization": f"Bearer {alice_pat}"})
    assert rejected.status_code == 401


@pytest.mark.parametrize(
    "path, data",
    [
        ("/console/share", {"subject": "carol", "scopes": ["read"], "duration": "30d"}),
        ("/console/requests/1", {"r1-deny": "Deny"}),
        ("/console/policies/1", {"p1-revoke": "Revoke"}),
        ("/console/apps/ehr/disconnect", {}),
    ],
)
def test_every_console_form_needs_its_csrf_token(client, history, path, data):
    signed_in(client)
    response = client.post(path, data=data, follow_redirects=True)
    assert response.status_code in (200, 400)
    assert b"expired" in response.data or b"CSRF" in response.data
    assert policies(client) == []


def test_an_owner_never_sees_another_owners_rows(client, alice_pat, history):
    signed_in(client)
    share(client, [history], "user", "carol")
    (policy,) = policies(client)
    signed_in(client, "carol")
    for path in ("/console/", "/console/policies", "/console/history", "/console/apps"):
        assert b"medical history" not in client.get(path).data, path
    assert client.get(f"/console/resources/{history}").status_code == 404
    assert client.get(f"/console/share?r={history}").data.count(history.encode()) == 0
    page = client.get("/console/policies").data.decode()
    client.post(
        f"/console/policies/{policy['id']}",
        data={
            "csrf_token": csrf_token(page),
            f"p{policy['id']}-duration": "30d",
            f"p{policy['id']}-revoke": "Revoke",
        },
    )
    signed_in(client)
    assert len(policies(client)) == 1  # still there: Carol cannot revoke Alice's policy


def test_signed_out_is_sent_to_sign_in(client):
    for path in ("/console/", "/console/requests", "/console/history", "/console/apps"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
