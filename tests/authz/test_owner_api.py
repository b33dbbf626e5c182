"""The owner's JSON API (/api/owner): sessions and CSRF, policies, uncovered-requester settings,
pending requests made by real UMA grants (checklist 6.4 request_submitted / request_denied),
and the audit log.

Owners drive the API from their own test client, as a browser tab would; requesters get their
ID tokens through the doctor app on the shared ``client``, so neither signs the other out.
"""

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.authz.conftest import DOCTOR_AUTH, EHR_AUTH, bearer, code_flow_tokens, csrf_token

API = "/api/owner"
UMA_GRANT = "urn:ietf:params:oauth:grant-type:uma-ticket"
ID_TOKEN_FORMAT = "http://openid.net/specs/openid-connect-core-1_0.html#IDToken"
DOCTOR_REDIRECT = "http://localhost:8402/auth/callback"
LABS = {
    "name": "Alice's lab results",
    "type": "https://uma-health.example/rsrc/record-set/labs",
    "resource_scopes": ["read", "write", "download"],
}
CAROL_RECORD = {"name": "Carol's history", "resource_scopes": ["read", "write"]}


def future(days: int = 30) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def assert_json_error(response, status: int, error: str | None = None) -> dict:
    """An API error: the status, a JSON body with an ``error`` member, never a page or a 500."""
    assert response.status_code == status, (response.status_code, response.data[:300])
    assert response.is_json, response.content_type
    assert isinstance(response.json.get("error"), str)
    if error is not None:
        assert response.json["error"] == error, response.json
    return response.json


class Owner:
    """A signed-in owner holding the session's CSRF token, as the console's scripts would."""

    def __init__(self, client, username: str):
        self.client = client
        page = client.get("/login")
        signed_in = client.post(
            "/login",
            data={"username": username, "password": username, "csrf_token": csrf_token(page.data)},
        )
        assert signed_in.status_code == 302
        session = client.get(f"{API}/session")
        assert session.status_code == 200
        assert session.json["username"] == username
        self.csrf = {"X-CSRFToken": session.json["csrf_token"]}

    def get(self, path: str, **params):
        return self.client.get(API + path, query_string=params)

    def post(self, path: str, body=None):
        return self.client.post(API + path, json=body, headers=self.csrf)

    def put(self, path: str, body=None):
        return self.client.put(API + path, json=body, headers=self.csrf)

    def delete(self, path: str):
        return self.client.delete(API + path, headers=self.csrf)

    def share(self, subject: dict, resources: list[str], scopes=("read",), **extra) -> dict:
        body = {"subject": subject, "resources": resources, "scopes": list(scopes), **extra}
        response = self.post("/policies", body)
        assert response.status_code == 201, response.json
        return response.json

    def pending(self) -> list[dict]:
        response = self.get("/requests")
        assert response.status_code == 200
        return response.json


@pytest.fixture
def sign_in(app):
    """Factory: an owner signed in on a test client of their own."""
    return lambda username: Owner(app.test_client(), username)


@pytest.fixture
def alice(sign_in):
    return sign_in("alice")


@pytest.fixture
def rid(alice_pat, register):
    """Alice's medical history (scopes read, write), registered by the EHR."""
    return register(alice_pat)


@pytest.fixture
def labs_rid(alice_pat, register):
    return register(alice_pat, LABS)


@pytest.fixture
def carol_rid(carol_pat, register):
    return register(carol_pat, CAROL_RECORD)


@pytest.fixture
def id_token(client):
    """Factory: a requester's ID token for the doctor app (one code flow per person)."""
    made: dict[str, str] = {}

    def _id_token(username: str) -> str:
        if username not in made:
            made[username] = code_flow_tokens(
                client,
                username,
                client_auth=DOCTOR_AUTH,
                redirect_uri=DOCTOR_REDIRECT,
                scope="openid",
            )["id_token"]
        return made[username]

    return _id_token


@pytest.fixture
def ask(client, id_token):
    """Factory: the RS asks for a ticket with the owner's PAT, then the doctor app runs the
    UMA grant for ``username``, pushing their ID token as the claim token (UMA Grant §3.3.1)."""

    def _ask(pat: str, resource_id: str, username: str, scopes=("read",)):
        token = id_token(username)
        permission = client.post(
            "/uma/permission",
            json={"resource_id": resource_id, "resource_scopes": list(scopes)},
            headers=bearer(pat),
        )
        assert permission.status_code == 201, permission.json
        return client.post(
            "/token",
            data={
                "grant_type": UMA_GRANT,
                "ticket": permission.json["ticket"],
                "claim_token": token,
                "claim_token_format": ID_TOKEN_FORMAT,
            },
            auth=DOCTOR_AUTH,
        )

    return _ask


def assert_submitted(response):
    body = assert_json_error(response, 403, "request_submitted")
    assert body["ticket"]
    assert isinstance(body.get("interval", 5), int)


# --- signed out, CSRF, content type ---------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/session", "/resources", "/policies", "/requests", "/audit"],
)
def test_signed_out_read_is_401_json(client, path):
    response = client.get(API + path)
    assert_json_error(response, 401, "login_required")
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/policies"),
        ("delete", "/policies/1"),
        ("put", "/resources/some-id/settings"),
        ("post", "/requests/1/approve"),
        ("post", "/requests/1/deny"),
    ],
)
def test_signed_out_write_is_401_json(client, method, path):
    """With a CSRF token valid for the (anonymous) session, only the sign-in is missing."""
    token = csrf_token(client.get("/login").data)
    response = getattr(client, method)(
        API + path, json={"uncovered": "ask"}, headers={"X-CSRFToken": token}
    )
    assert_json_error(response, 401, "login_required")


def test_signed_out_write_without_csrf_header_is_a_json_error(client):
    """A script that lost its session gets JSON back (401, or 400 for the CSRF check), never
    an HTML page."""
    response = client.post(f"{API}/policies", json={})
    assert response.status_code in (400, 401)
    assert_json_error(response, response.status_code)


def test_session_gives_the_csrf_token(alice):
    response = alice.get("/session")
    assert response.json["username"] == "alice"
    assert response.json["csrf_token"]


WRITES = [
    pytest.param("post", "/policies", id="create-policy"),
    pytest.param("delete", "/policies/{policy_id}", id="revoke-policy"),
    pytest.param("put", "/resources/{rid}/settings", id="settings"),
    pytest.param("post", "/requests/1/approve", id="approve"),
    pytest.param("post", "/requests/1/deny", id="deny"),
]


@pytest.fixture
def bob_policy(alice, rid) -> dict:
    return alice.share({"type": "user", "username": "bob"}, [rid])


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_write_without_csrf_header_is_400_json(alice, rid, bob_policy, method, path):
    """SEC: a session cookie alone cannot write; the refusal is JSON like every API error."""
    url = API + path.format(rid=rid, policy_id=bob_policy["id"])
    body = {"subject": {"type": "user", "username": "carol"}, "resources": [rid]}
    response = getattr(alice.client, method)(url, json={**body, "scopes": ["read"]})
    assert_json_error(response, 400)


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_write_without_csrf_header_changes_nothing(alice, rid, bob_policy, method, path):
    url = API + path.format(rid=rid, policy_id=bob_policy["id"])
    body = {"subject": {"type": "user", "username": "carol"}, "resources": [rid]}
    response = getattr(alice.client, method)(
        url, json={**body, "scopes": ["read"], "uncovered": "deny"}
    )
    assert response.status_code == 400
    assert [p["id"] for p in alice.get("/policies").json] == [bob_policy["id"]]
    assert alice.get("/resources").json[0]["uncovered"] == "ask"


def test_csrf_token_of_another_session_is_refused(alice, sign_in, rid):
    carol = sign_in("carol")
    response = alice.client.post(
        f"{API}/policies",
        json={
            "subject": {"type": "user", "username": "bob"},
            "resources": [rid],
            "scopes": ["read"],
        },
        headers=carol.csrf,
    )
    assert response.status_code == 400
    assert alice.get("/policies").json == []


def test_write_with_csrf_header_works(alice, rid):
    response = alice.post(
        "/policies",
        {"subject": {"type": "user", "username": "bob"}, "resources": [rid], "scopes": ["read"]},
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        ("text/plain", '{"uncovered": "deny"}'),
        ("application/x-www-form-urlencoded", "uncovered=deny"),
        (None, '{"uncovered": "deny"}'),
        ("application/json", "{not json"),
        ("application/json", ""),
        ("application/json", '["uncovered", "deny"]'),
        ("application/json", '{"uncovered": "deny", "uncovered": "ask"}'),
    ],
    ids=["text", "form", "no-type", "bad-json", "empty", "array", "duplicate-member"],
)
def test_bad_body_is_400(alice, rid, content_type, data):
    response = alice.client.put(
        f"{API}/resources/{rid}/settings",
        data=data,
        content_type=content_type,
        headers=alice.csrf,
    )
    assert_json_error(response, 400, "invalid_request")
    assert alice.get("/resources").json[0]["uncovered"] == "ask"


def test_policy_with_wrong_content_type_is_400(alice, rid):
    response = alice.client.post(
        f"{API}/policies",
        data='{"subject": {"type": "user", "username": "bob"}, "resources": ["x"]}',
        content_type="text/plain",
        headers=alice.csrf,
    )
    assert_json_error(response, 400, "invalid_request")


# --- policies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "shown"),
    [
        ({"type": "user", "username": "bob"}, {"type": "user", "username": "bob"}),
        ({"type": "user", "email": "BOB@surgery.example"}, {"type": "user", "username": "bob"}),
        ({"type": "group", "name": "surgery-center"}, {"type": "group", "name": "surgery-center"}),
        (
            {"type": "email_domain", "domain": "surgery.example"},
            {"type": "email_domain", "domain": "surgery.example"},
        ),
        (
            {"type": "email_domain", "domain": "@Surgery.Example"},
            {"type": "email_domain", "domain": "surgery.example"},
        ),
    ],
    ids=["user", "user-by-email", "group", "email-domain", "email-domain-normalised"],
)
def test_create_policy_for_each_subject_kind(alice, rid, subject, shown):
    created = alice.share(subject, [rid], ["read"], x_ext=1)
    assert created["subject"] == shown
    assert created["resources"] == [rid]
    assert created["scopes"] == ["read"]
    assert created["expires_at"] is None
    assert created["revoked_at"] is None
    assert created["from_request"] is None
    assert isinstance(created["id"], int)
    assert alice.get("/policies").json == [created]


def test_create_policy_over_several_resources(alice, rid, labs_rid):
    expires = future()
    created = alice.share(
        {"type": "group", "name": "surgery-center"},
        [rid, labs_rid, rid],
        ["read", "write", "read"],
        expires_at=expires,
    )
    assert created["resources"] == [rid, labs_rid]  # duplicates folded, order kept
    assert created["scopes"] == ["read", "write"]
    assert datetime.fromisoformat(created["expires_at"]) == datetime.fromisoformat(expires)


def test_policies_grant_their_subjects_at_the_token_endpoint(alice, alice_pat, rid, ask):
    """What the API stores is what the grant enforces: domain and group subjects."""
    alice.share({"type": "email_domain", "domain": "surgery.example"}, [rid], ["read"])
    granted = ask(alice_pat, rid, "bob")
    assert granted.status_code == 200, granted.json
    assert granted.json["token_type"] == "Bearer"
    assert_submitted(ask(alice_pat, rid, "mallory"))


VALID_POLICY = {
    "subject": {"type": "user", "username": "bob"},
    "resources": ["{rid}"],
    "scopes": ["read"],
}


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        ({"subject": {"type": "user", "username": "nobody"}}, 400, "invalid_request"),
        ({"subject": {"type": "user", "email": "nobody@x.example"}}, 400, "invalid_request"),
        ({"subject": {"type": "user"}}, 400, "invalid_request"),
        ({"subject": {"type": "user", "username": 42}}, 400, "invalid_request"),
        ({"subject": {"type": "group", "name": "no-such-group"}}, 400, "invalid_request"),
        ({"subject": {"type": "group"}}, 400, "invalid_request"),
        ({"subject": {"type": "group", "name": ["x"]}}, 400, "invalid_request"),
        ({"subject": {"type": "email_domain", "domain": "surgery"}}, 400, "invalid_request"),
        (
            {"subject": {"type": "email_domain", "domain": "bob@surgery.example"}},
            400,
            "invalid_request",
        ),
        ({"subject": {"type": "email_domain", "domain": 7}}, 400, "invalid_request"),
        ({"subject": {"type": "email_domain"}}, 400, "invalid_request"),
        ({"subject": {"type": "everyone"}}, 400, "invalid_request"),
        ({"subject": "bob"}, 400, "invalid_request"),
        ({"subject": None}, 400, "invalid_request"),
        ({"scopes": ["delete"]}, 400, "invalid_request"),
        ({"scopes": ["read", "delete"]}, 400, "invalid_request"),
        ({"scopes": []}, 400, "invalid_request"),
        ({"scopes": "read"}, 400, "invalid_request"),
        ({"scopes": [1]}, 400, "invalid_request"),
        ({"scopes": [""]}, 400, "invalid_request"),
        ({"scopes": None}, 400, "invalid_request"),
        ({"expires_at": "2001-01-01T00:00:00Z"}, 400, "invalid_request"),
        ({"expires_at": "2099-01-01T00:00:00"}, 400, "invalid_request"),
        ({"expires_at": 4070908800}, 400, "invalid_request"),
        ({"expires_at": "next tuesday"}, 400, "invalid_request"),
        ({"expires_at": ["2099-01-01T00:00:00Z"]}, 400, "invalid_request"),
        ({"resources": "{rid}"}, 400, "invalid_request"),
        ({"resources": []}, 400, "invalid_request"),
        ({"resources": [1]}, 400, "invalid_request"),
        ({"resources": None}, 400, "invalid_request"),
        ({"resources": ["{carol_rid}"]}, 404, "not_found"),
        ({"resources": ["{rid}", "{carol_rid}"]}, 404, "not_found"),
        ({"resources": ["no-such-resource"]}, 404, "not_found"),
    ],
    ids=[
        "unknown-user",
        "unknown-email",
        "user-without-name",
        "username-not-string",
        "unknown-group",
        "group-without-name",
        "group-name-not-string",
        "domain-without-dot",
        "domain-is-an-address",
        "domain-not-string",
        "domain-missing",
        "unknown-subject-type",
        "subject-not-object",
        "subject-null",
        "scope-not-registered",
        "one-scope-not-registered",
        "empty-scopes",
        "scopes-not-list",
        "scope-not-string",
        "scope-empty-string",
        "scopes-null",
        "expires-in-past",
        "expires-without-timezone",
        "expires-not-string",
        "expires-not-a-date",
        "expires-a-list",
        "resources-not-list",
        "resources-empty",
        "resource-not-string",
        "resources-null",
        "another-owners-resource",
        "one-of-them-another-owners",
        "unknown-resource",
    ],
)
def test_invalid_policy_is_refused(alice, rid, carol_rid, change, status, error):
    def fill(value):
        if isinstance(value, str):
            return value.format(rid=rid, carol_rid=carol_rid)
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    body = {k: fill(v) for k, v in {**VALID_POLICY, **change}.items()}
    assert_json_error(alice.post("/policies", body), status, error)
    assert alice.get("/policies", include_revoked=1).json == []


@pytest.mark.parametrize("body", [[], "policy", 1, None], ids=["array", "string", "number", "null"])
def test_policy_body_must_be_an_object(alice, body):
    response = alice.client.post(
        f"{API}/policies",
        data=json.dumps(body),
        content_type="application/json",
        headers=alice.csrf,
    )
    assert_json_error(response, 400, "invalid_request")


def test_policy_without_body_is_400(alice):
    assert_json_error(alice.post("/policies"), 400, "invalid_request")


def test_list_policies_hides_revoked_unless_asked(alice, rid, labs_rid):
    first = alice.share({"type": "user", "username": "bob"}, [rid])
    second = alice.share({"type": "group", "name": "surgery-center"}, [labs_rid])
    assert [p["id"] for p in alice.get("/policies").json] == [second["id"], first["id"]]

    assert alice.delete(f"/policies/{first['id']}").status_code == 200
    assert [p["id"] for p in alice.get("/policies").json] == [second["id"]]
    for flag in ("1", "true"):
        listed = alice.get("/policies", include_revoked=flag).json
        assert [p["id"] for p in listed] == [second["id"], first["id"]]
        assert listed[1]["revoked_at"] is not None
    assert [p["id"] for p in alice.get("/policies", include_revoked="0").json] == [second["id"]]


def test_revoke_sets_revoked_at_and_is_idempotent(alice, rid):
    policy = alice.share({"type": "user", "username": "bob"}, [rid])
    first = alice.delete(f"/policies/{policy['id']}")
    assert first.status_code == 200
    assert first.json["id"] == policy["id"]
    revoked_at = datetime.fromisoformat(first.json["revoked_at"])
    assert revoked_at <= datetime.now(UTC)

    again = alice.delete(f"/policies/{policy['id']}")
    assert again.status_code == 200
    assert again.json["revoked_at"] == first.json["revoked_at"]


def test_revoked_policy_no_longer_grants(alice, alice_pat, rid, ask):
    policy = alice.share({"type": "user", "username": "bob"}, [rid])
    assert ask(alice_pat, rid, "bob").status_code == 200
    alice.delete(f"/policies/{policy['id']}")
    assert_submitted(ask(alice_pat, rid, "bob"))


def test_revoke_unknown_policy_is_404(alice):
    assert_json_error(alice.delete("/policies/9999"), 404, "not_found")


def test_service_account_is_not_a_subject(alice, client, rid):
    """A client's service account owns RS-registered resources; it is nobody to share with."""
    issued = client.post("/token", data={"grant_type": "client_credentials"}, auth=EHR_AUTH)
    assert issued.status_code == 200
    body = {**VALID_POLICY, "resources": [rid]}
    body["subject"] = {"type": "user", "username": "service-account-ehr"}
    assert_json_error(alice.post("/policies", body), 400, "invalid_request")


def test_expiry_with_an_offset_keeps_the_instant(alice, rid):
    expires = (
        (datetime.now(UTC) + timedelta(days=3)).astimezone(timezone(timedelta(hours=2))).isoformat()
    )
    created = alice.share({"type": "user", "username": "bob"}, [rid], expires_at=expires)
    assert datetime.fromisoformat(created["expires_at"]) == datetime.fromisoformat(expires)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "/no-such-endpoint", 404),
        ("delete", "/policies/not-a-number", 404),
        ("get", "/policies/1", 405),
        ("get", "/requests/1/approve", 405),
    ],
)
def test_unknown_api_route_or_method_is_json(alice, method, path, status):
    """The owner API answers in JSON even for routes and methods it does not have."""
    response = getattr(alice.client, method)(API + path, headers=alice.csrf)
    assert_json_error(response, status)


def test_another_owner_cannot_see_or_revoke_policies(alice, sign_in, rid):
    policy = alice.share({"type": "user", "username": "bob"}, [rid])
    carol = sign_in("carol")
    assert carol.get("/policies").json == []
    assert carol.get("/policies", include_revoked=1).json == []
    assert_json_error(carol.delete(f"/policies/{policy['id']}"), 404, "not_found")
    assert alice.get("/policies").json[0]["revoked_at"] is None


# --- resources and the uncovered-requester setting ------------------------------------------


def test_resources_lists_only_own(alice, sign_in, rid, labs_rid, carol_rid):
    listed = alice.get("/resources").json
    assert {r["id"] for r in listed} == {rid, labs_rid}
    history = next(r for r in listed if r["id"] == rid)
    assert history["name"] == "Alice's medical history"
    assert history["scopes"] == ["read", "write"]
    assert history["uncovered"] == "ask"
    assert history["resource_server"] == "Alice's EHR"
    assert [r["id"] for r in sign_in("carol").get("/resources").json] == [carol_rid]
    assert sign_in("bob").get("/resources").json == []


def test_uncovered_setting(alice, alice_pat, rid, ask):
    response = alice.put(f"/resources/{rid}/settings", {"uncovered": "deny"})
    assert response.status_code == 200
    assert response.json == {"id": rid, "uncovered": "deny"}
    assert alice.get("/resources").json[0]["uncovered"] == "deny"
    # "deny": an uncovered requester is refused outright and nobody is asked.
    assert_json_error(ask(alice_pat, rid, "mallory"), 403, "request_denied")
    assert alice.pending() == []

    response = alice.put(f"/resources/{rid}/settings", {"uncovered": "ask"})
    assert response.json == {"id": rid, "uncovered": "ask"}
    assert_submitted(ask(alice_pat, rid, "mallory"))
    assert len(alice.pending()) == 1


@pytest.mark.parametrize(
    "body",
    [{"uncovered": "maybe"}, {"uncovered": "ASK"}, {"uncovered": 1}, {"uncovered": None}, {}],
    ids=["maybe", "upper-case", "number", "null", "missing"],
)
def test_uncovered_setting_bad_value_is_400(alice, rid, body):
    assert_json_error(alice.put(f"/resources/{rid}/settings", body), 400, "invalid_request")
    assert alice.get("/resources").json[0]["uncovered"] == "ask"


def test_uncovered_setting_of_another_owners_resource_is_404(alice, carol_rid, sign_in):
    assert_json_error(
        alice.put(f"/resources/{carol_rid}/settings", {"uncovered": "deny"}), 404, "not_found"
    )
    assert sign_in("carol").get("/resources").json[0]["uncovered"] == "ask"
    assert_json_error(
        alice.put("/resources/no-such-id/settings", {"uncovered": "deny"}), 404, "not_found"
    )


# --- pending requests, made by real UMA grants ---------------------------------------------


def test_uncovered_requester_makes_a_pending_request(alice, alice_pat, rid, ask):
    """6.4 request_submitted: no policy covers Mallory, the resource says "ask"."""
    assert_submitted(ask(alice_pat, rid, "mallory"))
    [found] = alice.pending()
    assert found["requester"] == {
        "username": "mallory",
        "name": "Mallory Stranger",
        "email": "mallory@elsewhere.example",
    }
    assert found["client"] == "Doctor app"
    assert found["resource"] == {"id": rid, "name": "Alice's medical history"}
    assert found["scopes"] == ["read"]
    assert found["status"] == "pending"
    assert found["decided_at"] is None


def test_repeat_ask_keeps_one_pending_request(alice, alice_pat, rid, ask):
    """Dedup: the same requester and resource → one pending request, its scopes widened."""
    assert_submitted(ask(alice_pat, rid, "mallory"))
    assert_submitted(ask(alice_pat, rid, "mallory"))
    [found] = alice.pending()
    assert found["scopes"] == ["read"]

    assert_submitted(ask(alice_pat, rid, "mallory", scopes=("write",)))
    [widened] = alice.pending()
    assert widened["id"] == found["id"]
    assert widened["scopes"] == ["read", "write"]

    assert_submitted(ask(alice_pat, rid, "carol"))
    assert sorted(r["requester"]["username"] for r in alice.pending()) == ["carol", "mallory"]


def test_pending_requests_are_the_owners_own(alice, alice_pat, rid, ask, sign_in):
    assert_submitted(ask(alice_pat, rid, "mallory"))
    carol = sign_in("carol")
    assert carol.pending() == []
    assert carol.get("/requests", status="all").json == []
    [found] = alice.pending()
    assert_json_error(carol.post(f"/requests/{found['id']}/approve"), 404, "not_found")
    assert_json_error(carol.post(f"/requests/{found['id']}/deny"), 404, "not_found")
    assert alice.pending()[0]["status"] == "pending"
    assert carol.get("/policies").json == []


def test_approve_with_narrowed_scopes_and_expiry(alice, alice_pat, rid, ask):
    assert_submitted(ask(alice_pat, rid, "mallory", scopes=("read", "write")))
    [found] = alice.pending()
    assert found["scopes"] == ["read", "write"]
    expires = future(7)

    response = alice.post(
        f"/requests/{found['id']}/approve", {"scopes": ["read"], "expires_at": expires}
    )
    assert response.status_code == 201, response.json
    policy = response.json
    assert policy["subject"] == {"type": "user", "username": "mallory"}
    assert policy["resources"] == [rid]
    assert policy["scopes"] == ["read"]
    assert datetime.fromisoformat(policy["expires_at"]) == datetime.fromisoformat(expires)
    assert policy["from_request"] == found["id"]
    assert alice.get("/policies").json == [policy]

    assert alice.pending() == []
    [answered] = alice.get("/requests", status="all").json
    assert answered["status"] == "approved"
    assert answered["decided_at"] is not None
    assert [r["id"] for r in alice.get("/requests", status="approved").json] == [found["id"]]

    # The narrowed policy grants read, and only read.
    assert ask(alice_pat, rid, "mallory").status_code == 200
    partial = ask(alice_pat, rid, "mallory", scopes=("read", "write"))
    assert partial.status_code == 200  # a partial grant: read now, write asked of the owner
    [again] = alice.pending()
    assert again["scopes"] == ["write"]


def test_approve_without_body_shares_what_was_asked(alice, alice_pat, rid, ask):
    assert_submitted(ask(alice_pat, rid, "mallory"))
    [found] = alice.pending()
    response = alice.post(f"/requests/{found['id']}/approve")
    assert response.status_code == 201
    assert response.json["scopes"] == ["read"]
    assert response.json["expires_at"] is None
    assert ask(alice_pat, rid, "mallory").status_code == 200


def test_approving_twice_is_400(alice, alice_pat, rid, ask):
    assert_submitted(ask(alice_pat, rid, "mallory"))
    [found] = alice.pending()
    assert alice.post(f"/requests/{found['id']}/approve").status_code == 201
    assert_json_error(alice.post(f"/requests/{found['id']}/approve"), 400, "invalid_request")
    assert_json_error(alice.post(f"/requests/{found['id']}/deny"), 400, "invalid_request")
    assert len(alice.get("/policies").json) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"scopes": ["delete"]},
        {"scopes": []},
        {"scopes": "read"},
        {"scopes": [1]},
        {"expires_at": "2001-01-01T00:00:00Z"},
        {"expires_at": "2099-01-01T00:00:00"},
        {"expires_at": 4070908800},
        ["read"],
    ],
    ids=[
        "scope-not-registered",
        "empty-scopes",
        "scopes-not-list",
        "scope-not-string",
        "expires-in-past",
        "expires-without-timezone",
        "expires-not-string",
        "body-not-object",
    ],
)
def test_bad_approval_is_400_and_leaves_the_request_pending(alice, alice_pat, rid, ask, body):
    assert_submitted(ask(alice_pat, rid, "mallory"))
    [found] = alice.pending()
    assert_json_error(alice.post(f"/requests/{found['id']}/approve", body), 400, "invalid_request")
    assert alice.pending()[0]["status"] == "pending"
    assert alice.get("/policies").json == []


def test_answering_unknown_request_is_404(alice):
    assert_json_error(alice.post("/requests/9999/approve"), 404, "not_found")
    assert_json_error(alice.post("/requests/9999/deny"), 404, "not_found")


def test_deny_then_requester_gets_request_denied(alice, alice_pat, rid, ask):
    """6.4 request_denied: once the owner said no, a new attempt is refused, not re-queued."""
    assert_submitted(ask(alice_pat, rid, "mallory"))
    [found] = alice.pending()

    response = alice.post(f"/requests/{found['id']}/deny")
    assert response.status_code == 200
    assert response.json["id"] == found["id"]
    assert response.json["status"] == "denied"
    assert response.json["decided_at"] is not None
    assert alice.pending() == []
    assert [r["id"] for r in alice.get("/requests", status="denied").json] == [found["id"]]

    refused = ask(alice_pat, rid, "mallory")
    assert_json_error(refused, 403, "request_denied")
    assert "ticket" not in refused.json
    assert alice.pending() == []

    assert_json_error(alice.post(f"/requests/{found['id']}/deny"), 400, "invalid_request")
    assert_json_error(alice.post(f"/requests/{found['id']}/approve"), 400, "invalid_request")

    # Others are still asked about: the refusal was of Mallory only.
    assert_submitted(ask(alice_pat, rid, "carol"))


def test_sharing_after_a_denial_lets_the_requester_in(alice, alice_pat, rid, ask):
    assert_submitted(ask(alice_pat, rid, "mallory"))
    [found] = alice.pending()
    alice.post(f"/requests/{found['id']}/deny")
    alice.share({"type": "user", "username": "mallory"}, [rid])
    assert ask(alice_pat, rid, "mallory").status_code == 200


# --- the audit log -------------------------------------------------------------------------


def audit(owner: Owner, **params) -> dict:
    response = owner.get("/audit", **params)
    assert response.status_code == 200, response.json
    return response.json


def test_audit_log_newest_first_and_filters(alice, alice_pat, rid, labs_rid, ask):
    assert_submitted(ask(alice_pat, rid, "mallory"))
    assert_submitted(ask(alice_pat, labs_rid, "bob"))
    [mallory_request] = [r for r in alice.pending() if r["requester"]["username"] == "mallory"]
    alice.post(f"/requests/{mallory_request['id']}/deny")
    assert_json_error(ask(alice_pat, rid, "mallory"), 403, "request_denied")

    log = audit(alice)
    assert log["total"] == 4
    assert log["page"] == 1
    events = log["events"]
    assert [(e["outcome"], e["requester"], e["resource_id"]) for e in events] == [
        ("denied", "mallory", rid),  # the grant refused after the owner said no
        ("denied", "mallory", rid),  # the owner's answer
        ("pending", "bob", labs_rid),
        ("pending", "mallory", rid),
    ]
    assert [e["id"] for e in events] == sorted((e["id"] for e in events), reverse=True)
    assert [e["at"] for e in events] == sorted((e["at"] for e in events), reverse=True)
    first = events[-1]
    assert first["client"] == "Doctor app"
    assert first["resource_name"] == "Alice's medical history"
    assert first["scopes"] == ["read"]
    assert first["reason"]

    pending = audit(alice, outcome="pending")
    assert pending["total"] == 2
    assert {e["outcome"] for e in pending["events"]} == {"pending"}

    by_bob = audit(alice, requester="bob")
    assert by_bob["total"] == 1
    assert by_bob["events"][0]["resource_id"] == labs_rid

    on_history = audit(alice, resource_id=rid)
    assert on_history["total"] == 3
    assert {e["resource_id"] for e in on_history["events"]} == {rid}

    both = audit(alice, outcome="denied", requester="mallory", resource_id=rid)
    assert both["total"] == 2
    assert audit(alice, requester="nobody") == {
        "events": [],
        "total": 0,
        "page": 1,
        "per_page": 50,
    }


def test_audit_log_records_approvals(alice, alice_pat, rid, ask):
    assert_submitted(ask(alice_pat, rid, "mallory"))
    [found] = alice.pending()
    alice.post(f"/requests/{found['id']}/approve", {"scopes": ["read", "write"]})
    assert ask(alice_pat, rid, "mallory").status_code == 200
    events = audit(alice)["events"]
    assert [(e["outcome"], e["requester"]) for e in events] == [
        ("granted", "mallory"),
        ("granted", "mallory"),
        ("pending", "mallory"),
    ]
    assert events[1]["scopes"] == ["read", "write"]


def test_audit_log_pagination(alice, alice_pat, rid, ask):
    for _ in range(5):
        assert_submitted(ask(alice_pat, rid, "mallory"))
    everything = audit(alice)["events"]
    assert len(everything) == 5

    pages = [audit(alice, per_page=2, page=n) for n in (1, 2, 3)]
    assert [p["total"] for p in pages] == [5, 5, 5]
    assert [p["page"] for p in pages] == [1, 2, 3]
    assert [p["per_page"] for p in pages] == [2, 2, 2]
    assert [len(p["events"]) for p in pages] == [2, 2, 1]
    assert [e["id"] for p in pages for e in p["events"]] == [e["id"] for e in everything]

    beyond = audit(alice, per_page=2, page=4)
    assert beyond["events"] == []
    assert beyond["total"] == 5
    # Out-of-range sizes are clamped, not errors.
    assert audit(alice, per_page=0)["per_page"] == 1
    assert audit(alice, per_page=10_000)["per_page"] == 200


@pytest.mark.parametrize("params", [{"page": "x"}, {"per_page": "ten"}, {"page": "1.5"}])
def test_audit_log_bad_paging_is_400(alice, params):
    assert_json_error(alice.get("/audit", **params), 400, "invalid_request")


def test_audit_log_is_per_owner(alice, sign_in, alice_pat, carol_pat, rid, carol_rid, ask):
    assert_submitted(ask(alice_pat, rid, "mallory"))
    carol = sign_in("carol")
    assert audit(carol)["total"] == 0
    assert audit(carol, resource_id=rid)["events"] == []

    assert_submitted(ask(carol_pat, carol_rid, "mallory"))
    carols = audit(carol)
    assert carols["total"] == 1
    assert carols["events"][0]["resource_id"] == carol_rid
    assert audit(carol, requester="mallory")["total"] == 1
    alices = audit(alice)
    assert alices["total"] == 1
    assert alices["events"][0]["resource_id"] == rid


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("delete", "/policies/99999999999999999999999"),
        ("post", "/requests/999999999999999999999/approve"),
        ("post", "/requests/999999999999999999999/deny"),
    ],
)
def test_ids_too_large_for_the_database_are_404_not_500(alice, method, path):
    """Found by fuzzing: an id past the database's integer range once overflowed to a 500."""
    response = getattr(alice, method)(path)
    assert_json_error(response, 404)
