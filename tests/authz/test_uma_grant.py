"""The UMA grant at the token endpoint (checklist sections 6 and 9), end to end through HTTP:
the RS's PAT asks for tickets, the doctor app redeems them, Alice's policies decide."""

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt as jose_jwt
from joserfc.jwk import RSAKey
from sqlalchemy import update

from authz_server import db
from authz_server.keys import new_private_jwk
from authz_server.models import PermissionTicket, Policy
from authz_server.seed import ensure_client
from tests.authz.conftest import (
    DOCTOR_AUTH,
    EHR_AUTH,
    ISSUER,
    RECORD,
    bearer,
    code_flow_tokens,
    csrf_token,
    login,
)

UMA_GRANT = "urn:ietf:params:oauth:grant-type:uma-ticket"
ID_TOKEN = "http://openid.net/specs/openid-connect-core-1_0.html#IDToken"
DOCTOR_REDIRECT = "http://localhost:8402/auth/callback"
CLAIMS_REDIRECT = "http://localhost:8402/uma/claims-callback"
LABS = {
    **RECORD,
    "name": "Alice's lab results",
    "type": "https://uma-health.example/rsrc/record-set/labs",
}


# --- helpers: every step goes through the real HTTP endpoints -------------------------


def id_token_for(client, username: str, auth=DOCTOR_AUTH, redirect_uri=DOCTOR_REDIRECT) -> str:
    return code_flow_tokens(
        client, username, client_auth=auth, redirect_uri=redirect_uri, scope="openid email"
    )["id_token"]


def ticket_for(client, pat: str, resource_id: str, scopes=("read",)) -> str:
    response = client.post(
        "/uma/permission",
        headers=bearer(pat),
        json={"resource_id": resource_id, "resource_scopes": list(scopes)},
    )
    assert response.status_code == 201, response.json
    return response.json["ticket"]


def grant(
    client,
    ticket,
    *,
    claim_token=None,
    pct=None,
    rpt=None,
    scope=None,
    auth=DOCTOR_AUTH,
    fmt=ID_TOKEN,
):
    data = {"grant_type": UMA_GRANT, "ticket": ticket}
    if claim_token:
        data.update(claim_token=claim_token, claim_token_format=fmt)
    for name, value in (("pct", pct), ("rpt", rpt), ("scope", scope)):
        if value:
            data[name] = value
    return client.post("/token", data=data, auth=auth)


def ask_as(client, pat: str, resource_id: str, person: str, scopes=("read",)):
    """The doctor app asks for ``scopes`` on a resource for ``person``, pushing their ID token."""
    return grant(
        client,
        ticket_for(client, pat, resource_id, scopes),
        claim_token=id_token_for(client, person),
    )


def owner_call(client, method: str, path: str, body=None, owner="alice"):
    """Alice (signed in at the AS) uses her owner API with the session's CSRF token."""
    login(client, owner)
    token = client.get("/api/owner/session").json["csrf_token"]
    response = client.open(path, method=method, json=body, headers={"X-CSRFToken": token})
    client.post("/logout", data={"csrf_token": csrf_token(client.get("/console/").data)})
    return response


def share(client, subject: dict, resources: list[str], scopes=("read",), expires_at=None):
    response = owner_call(
        client,
        "POST",
        "/api/owner/policies",
        {
            "subject": subject,
            "resources": resources,
            "scopes": list(scopes),
            "expires_at": expires_at,
        },
    )
    assert response.status_code == 201, response.json
    return response.json["id"]


def introspect(client, pat: str, token: str) -> dict:
    response = client.post("/introspect", data={"token": token}, headers=bearer(pat))
    assert response.status_code == 200
    return response.json


def assert_uma_error(response, status: int, error: str):
    """Checklist 6.4: RFC 6749 §5.2 JSON with no-store."""
    assert response.status_code == status, response.json
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.json["error"] == error
    return response.json


@pytest.fixture
def history(alice_pat, register):
    return register(alice_pat)


@pytest.fixture
def labs(alice_pat, register):
    return register(alice_pat, LABS)


# --- the stories -------------------------------------------------------------------------


def test_carol_with_a_standing_policy_gets_an_rpt_first_try(client, alice_pat, history):
    """6.3: success with access_token + token_type, no ``scope``; a PCT for pushed claims."""
    share(client, {"type": "user", "username": "carol"}, [history])
    response = ask_as(client, alice_pat, history, "carol")
    assert response.status_code == 200, response.json
    body = response.json
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    assert "scope" not in body and "refresh_token" not in body
    assert body["pct"].startswith("pct.")
    assert response.headers["Cache-Control"] == "no-store"

    info = introspect(client, alice_pat, body["access_token"])
    assert info["active"] is True and "scope" not in info  # INT-U2
    assert info["username"] == "carol"
    assert info["permissions"] == [
        {"resource_id": history, "resource_scopes": ["read"], "exp": info["exp"]}
    ]


def test_rpt_is_a_signed_jwt_with_kid_jti_and_permissions(client, alice_pat, history):
    share(client, {"type": "user", "username": "carol"}, [history])
    token = ask_as(client, alice_pat, history, "carol").json["access_token"]
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "RS256" and header["kid"]
    keys = {k["kid"]: k for k in client.get("/jwks").json["keys"]}
    claims = jose_jwt.decode(token, RSAKey.import_key(keys[header["kid"]])).claims
    assert claims["jti"] and claims["iss"] == ISSUER and claims["azp"] == "doctor-app"
    assert claims["exp"] - claims["iat"] == 300
    assert claims["permissions"] == [{"resource_id": history, "resource_scopes": ["read"]}]


def test_stranger_under_ask_is_submitted_then_approved(client, alice_pat, history):
    """request_submitted with a NEW ticket and interval (TKT-4, TKT-5); the poll succeeds
    once Alice approves, even with only the ticket."""
    first = ticket_for(client, alice_pat, history)
    bob = id_token_for(client, "bob")
    body = assert_uma_error(grant(client, first, claim_token=bob), 403, "request_submitted")
    assert body["ticket"] != first and body["interval"] == 5

    # Polling before Alice answers: still submitted, yet another new ticket.
    again = assert_uma_error(grant(client, body["ticket"]), 403, "request_submitted")
    assert again["ticket"] != body["ticket"]

    pending = owner_call(client, "GET", "/api/owner/requests").json
    assert [(r["requester"]["username"], r["resource"]["id"]) for r in pending] == [
        ("bob", history)
    ]
    approved = owner_call(
        client,
        "POST",
        f"/api/owner/requests/{pending[0]['id']}/approve",
        {"scopes": ["read", "write"]},
    )
    assert approved.status_code == 201

    response = grant(client, again["ticket"])
    assert response.status_code == 200, response.json
    assert owner_call(client, "GET", "/api/owner/requests").json == []


def test_under_deny_the_stranger_is_refused(client, alice_pat, history):
    owner_call(client, "PUT", f"/api/owner/resources/{history}/settings", {"uncovered": "deny"})
    response = ask_as(client, alice_pat, history, "mallory")
    body = assert_uma_error(response, 403, "request_denied")
    assert "ticket" not in body
    assert owner_call(client, "GET", "/api/owner/requests").json == []


def test_a_denied_request_stays_denied(client, alice_pat, history):
    mallory = id_token_for(client, "mallory")
    assert_uma_error(
        grant(client, ticket_for(client, alice_pat, history), claim_token=mallory),
        403,
        "request_submitted",
    )
    request_id = owner_call(client, "GET", "/api/owner/requests").json[0]["id"]
    owner_call(client, "POST", f"/api/owner/requests/{request_id}/deny")
    assert_uma_error(
        grant(client, ticket_for(client, alice_pat, history), claim_token=mallory),
        403,
        "request_denied",
    )


def test_no_claims_need_info_then_claims_interaction_then_rpt(client, alice_pat, history):
    """need_info → claims interaction endpoint (6.7) → new ticket + same state → RPT + PCT."""
    share(client, {"type": "user", "username": "bob"}, [history])
    first = ticket_for(client, alice_pat, history)
    body = assert_uma_error(grant(client, first), 403, "need_info")
    assert body["ticket"] != first  # TKT-4
    assert body["redirect_user"] == ISSUER + "/rqp/claims"
    assert body["required_claims"][0]["claim_token_format"] == [ID_TOKEN]

    params = {
        "client_id": "doctor-app",
        "ticket": body["ticket"],
        "claims_redirect_uri": CLAIMS_REDIRECT,
        "state": "s-123",
    }
    assert client.get("/rqp/claims", query_string=params).status_code == 302  # to sign-in
    login(client, "bob")
    page = client.get("/rqp/claims", query_string=params)
    assert page.status_code == 200
    assert b"Doctor app" in page.data and b"Alice&#39;s medical history" in page.data
    back = client.post(
        "/rqp/claims",
        query_string=params,
        data={"csrf_token": csrf_token(page.data), "proceed": "1"},
    )
    assert back.status_code == 302
    location = urlsplit(back.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CLAIMS_REDIRECT
    returned = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert set(returned) == {"ticket", "state"}  # CI-5: no claims travel to the client
    assert returned["state"] == "s-123" and returned["ticket"] != body["ticket"]

    response = grant(client, returned["ticket"])
    assert response.status_code == 200, response.json
    assert response.json["pct"]


def test_pct_reuse_without_a_claim_token(client, alice_pat, history, labs):
    share(client, {"type": "user", "username": "carol"}, [history, labs])
    pct = ask_as(client, alice_pat, history, "carol").json["pct"]
    response = grant(client, ticket_for(client, alice_pat, labs), pct=pct)
    assert response.status_code == 200, response.json
    assert "pct" not in response.json  # nothing new was gathered


def test_pct_from_another_client_gains_nothing(client, alice_pat, history):
    """SEC-PCT: the PCT is bound to the client it was issued to."""
    with client.application.app_context():
        ensure_client(
            db.session(),
            "other-app",
            "other-secret",
            {
                "client_name": "Other app",
                "redirect_uris": ["http://localhost:9000/cb"],
                "claims_redirect_uris": ["http://localhost:9000/claims"],
                "grant_types": ["authorization_code", UMA_GRANT],
                "response_types": ["code"],
                "scope": "openid",
                "token_endpoint_auth_method": "client_secret_basic",
            },
        )
        db.session().commit()
    share(client, {"type": "user", "username": "carol"}, [history])
    pct = ask_as(client, alice_pat, history, "carol").json["pct"]
    response = grant(
        client, ticket_for(client, alice_pat, history), pct=pct, auth=("other-app", "other-secret")
    )
    assert_uma_error(response, 403, "need_info")


def test_revoked_pct_is_not_accepted(client, alice_pat, history):
    """REV-1: ``token_type_hint=pct`` at the RFC 7009 endpoint."""
    share(client, {"type": "user", "username": "carol"}, [history])
    pct = ask_as(client, alice_pat, history, "carol").json["pct"]
    revoked = client.post(
        "/revoke", data={"token": pct, "token_type_hint": "pct"}, auth=DOCTOR_AUTH
    )
    assert revoked.status_code == 200
    assert_uma_error(
        grant(client, ticket_for(client, alice_pat, history), pct=pct), 403, "need_info"
    )


def test_ticket_replay_is_invalid_grant_and_revokes_its_rpt(client, alice_pat, history):
    """TKT-2, TKT-3 (replay → invalid_grant), TKT-6 (tokens based on it are revoked)."""
    share(client, {"type": "user", "username": "carol"}, [history])
    ticket = ticket_for(client, alice_pat, history)
    carol = id_token_for(client, "carol")
    rpt = grant(client, ticket, claim_token=carol).json["access_token"]
    assert introspect(client, alice_pat, rpt)["active"] is True
    assert_uma_error(grant(client, ticket, claim_token=carol), 400, "invalid_grant")
    assert introspect(client, alice_pat, rpt) == {"active": False}


def test_unknown_and_expired_tickets_are_invalid_grant(app, client, alice_pat, history):
    carol = id_token_for(client, "carol")
    assert_uma_error(grant(client, "no-such-ticket", claim_token=carol), 400, "invalid_grant")
    ticket = ticket_for(client, alice_pat, history)
    with app.app_context():
        db.session().execute(
            update(PermissionTicket).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        db.session().commit()
    assert_uma_error(grant(client, ticket, claim_token=carol), 400, "invalid_grant")


def test_rpt_upgrade_across_two_resources(client, alice_pat, history, labs):
    """UPG-2: upgraded:true and both permissions; UPG-4: the old RPT is revoked."""
    share(client, {"type": "user", "username": "carol"}, [history, labs])
    carol = id_token_for(client, "carol")
    first = grant(client, ticket_for(client, alice_pat, history), claim_token=carol).json
    second = grant(
        client, ticket_for(client, alice_pat, labs), claim_token=carol, rpt=first["access_token"]
    ).json
    assert second["upgraded"] is True
    info = introspect(client, alice_pat, second["access_token"])
    assert sorted(p["resource_id"] for p in info["permissions"]) == sorted([history, labs])
    assert introspect(client, alice_pat, first["access_token"]) == {"active": False}


def test_no_upgrade_without_rpt_says_nothing(client, alice_pat, history):
    share(client, {"type": "user", "username": "carol"}, [history])
    body = ask_as(client, alice_pat, history, "carol").json
    assert "upgraded" not in body


def test_bad_rpt_for_upgrade_is_invalid_grant(client, alice_pat, history):
    """checklist 6.4 [WG#349]: an invalid ``rpt`` is invalid_grant."""
    share(client, {"type": "user", "username": "carol"}, [history])
    response = grant(
        client,
        ticket_for(client, alice_pat, history),
        claim_token=id_token_for(client, "carol"),
        rpt="not-an-rpt",
    )
    assert_uma_error(response, 400, "invalid_grant")


def test_group_subject(client, alice_pat, history):
    share(client, {"type": "group", "name": "surgery-center"}, [history])
    for person in ("dave", "erin", "bob"):
        response = grant(
            client, ticket_for(client, alice_pat, history), claim_token=id_token_for(client, person)
        )
        assert response.status_code == 200, (person, response.json)
    assert_uma_error(
        ask_as(client, alice_pat, history, "carol"),
        403,
        "request_submitted",
    )


def test_claim_condition_subject(client, alice_pat, history):
    """Anyone whose verified email is at surgery.example."""
    share(client, {"type": "email_domain", "domain": "surgery.example"}, [history])
    ok = ask_as(client, alice_pat, history, "erin")
    assert ok.status_code == 200
    assert_uma_error(
        ask_as(client, alice_pat, history, "mallory"),
        403,
        "request_submitted",
    )


def test_time_limited_policy_expires(app, client, alice_pat, history):
    """An expiring policy: the permission's exp is the policy's; once past, no access."""
    soon = (datetime.now(UTC) + timedelta(seconds=120)).replace(microsecond=0)
    policy_id = share(
        client, {"type": "user", "username": "bob"}, [history], expires_at=soon.isoformat()
    )
    bob = id_token_for(client, "bob")
    rpt = grant(client, ticket_for(client, alice_pat, history), claim_token=bob).json
    info = introspect(client, alice_pat, rpt["access_token"])
    assert info["permissions"][0]["exp"] == int(soon.timestamp())
    assert info["exp"] > int(soon.timestamp())  # token lasts longer than the permission
    with app.app_context():  # time passes: the policy's end is now behind us
        db.session().execute(
            update(Policy)
            .where(Policy.id == policy_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        db.session().commit()
    assert introspect(client, alice_pat, rpt["access_token"]) == {"active": False}
    assert_uma_error(
        grant(client, ticket_for(client, alice_pat, history), claim_token=bob),
        403,
        "request_submitted",
    )


def test_revocation_makes_introspection_inactive_at_once(client, alice_pat, history):
    """PRIV-TTL, "no means no"."""
    policy_id = share(client, {"type": "user", "username": "bob"}, [history])
    rpt = ask_as(client, alice_pat, history, "bob").json["access_token"]
    assert introspect(client, alice_pat, rpt)["active"] is True
    assert owner_call(client, "DELETE", f"/api/owner/policies/{policy_id}").status_code == 200
    assert introspect(client, alice_pat, rpt) == {"active": False}


def test_revoking_one_scope_keeps_the_rest(client, alice_pat, history):
    read_id = share(client, {"type": "user", "username": "bob"}, [history], ["read"])
    share(client, {"type": "user", "username": "bob"}, [history], ["write"])
    rpt = ask_as(client, alice_pat, history, "bob", ["read", "write"]).json["access_token"]
    owner_call(client, "DELETE", f"/api/owner/policies/{read_id}")
    assert introspect(client, alice_pat, rpt)["permissions"][0]["resource_scopes"] == ["write"]


def test_partial_grant(client, alice_pat, history):
    """6.2 step 5: an RPT with the partial CandidateGrantedScopes; the rest goes to Alice."""
    share(client, {"type": "user", "username": "bob"}, [history], ["read"])
    rpt = ask_as(client, alice_pat, history, "bob", ["read", "write"]).json["access_token"]
    assert introspect(client, alice_pat, rpt)["permissions"][0]["resource_scopes"] == ["read"]
    asked = owner_call(client, "GET", "/api/owner/requests").json
    assert [(r["requester"]["username"], r["scopes"]) for r in asked] == [("bob", ["write"])]


def test_default_deny_with_no_policy_at_all(client, alice_pat, history):
    """ASMT-1: an owner with no policy never yields success."""
    for person in ("bob", "carol", "alice"):
        response = grant(
            client, ticket_for(client, alice_pat, history), claim_token=id_token_for(client, person)
        )
        assert response.status_code == 403, person


def test_rs_learns_only_about_its_owners_resources(client, alice_pat, carol_pat, history):
    """INT-U4: the RPT is inactive for an RS whose PAT belongs to another owner."""
    share(client, {"type": "user", "username": "bob"}, [history])
    rpt = ask_as(client, alice_pat, history, "bob").json["access_token"]
    assert introspect(client, carol_pat, rpt) == {"active": False}


def test_audit_log_records_every_decision(client, alice_pat, history):
    share(client, {"type": "user", "username": "carol"}, [history])
    grant(client, ticket_for(client, alice_pat, history))  # need_info
    ask_as(client, alice_pat, history, "carol")  # granted
    ask_as(client, alice_pat, history, "mallory")  # pending
    events = owner_call(client, "GET", "/api/owner/audit").json["events"]
    assert [(e["outcome"], e["requester"]) for e in events] == [
        ("pending", "mallory"),
        ("granted", "carol"),
        ("need_info", None),
    ]
    assert all(e["client"] == "Doctor app" and e["resource_id"] == history for e in events)
    assert all(e["scopes"] == ["read"] and e["reason"] and e["at"] for e in events)


# --- the spec's worked example (checklist 6.2) ------------------------------------------


def test_the_specs_worked_example(client, alice_pat, register):
    """photo1/photo2 {view,resize,print,download}, album {view,edit,download}; the client is
    pre-registered for download; ticket album:edit, photo1:view, photo2:view; scope=download;
    policy allows only photo1:view → an RPT with photo1:view only (a partial grant)."""
    photo = ["view", "resize", "print", "download"]
    photo1 = register(alice_pat, {"name": "photo1", "resource_scopes": photo})
    photo2 = register(alice_pat, {"name": "photo2", "resource_scopes": photo})
    album = register(alice_pat, {"name": "album", "resource_scopes": ["view", "edit", "download"]})
    with client.application.app_context():
        ensure_client(
            db.session(),
            "photoz",
            "photoz-secret",
            {
                "client_name": "Photoz",
                "redirect_uris": [DOCTOR_REDIRECT],
                "grant_types": ["authorization_code", UMA_GRANT],
                "response_types": ["code"],
                "scope": "openid download",
                "token_endpoint_auth_method": "client_secret_basic",
            },
        )
        db.session().commit()
    share(client, {"type": "user", "username": "bob"}, [photo1], ["view"])
    ticket = client.post(
        "/uma/permission",
        headers=bearer(alice_pat),
        json=[
            {"resource_id": album, "resource_scopes": ["edit"]},
            {"resource_id": photo1, "resource_scopes": ["view"]},
            {"resource_id": photo2, "resource_scopes": ["view"]},
        ],
    ).json["ticket"]
    bob = id_token_for(client, "bob", auth=("photoz", "photoz-secret"))
    response = grant(
        client, ticket, claim_token=bob, scope="download", auth=("photoz", "photoz-secret")
    )
    assert response.status_code == 200, response.json
    info = introspect(client, alice_pat, response.json["access_token"])
    assert [(p["resource_id"], p["resource_scopes"]) for p in info["permissions"]] == [
        (photo1, ["view"])
    ]
    asked = {
        r["resource"]["name"]: r["scopes"]
        for r in owner_call(client, "GET", "/api/owner/requests").json
    }
    assert asked == {
        "album": ["download", "edit"],
        "photo1": ["download"],
        "photo2": ["download", "view"],
    }


def test_scope_matching_no_resource_is_invalid_scope(client, alice_pat, history):
    with client.application.app_context():
        ensure_client(
            db.session(),
            "photoz",
            "photoz-secret",
            {
                "client_name": "Photoz",
                "redirect_uris": [DOCTOR_REDIRECT],
                "grant_types": [UMA_GRANT],
                "response_types": ["code"],
                "scope": "openid download",
                "token_endpoint_auth_method": "client_secret_basic",
            },
        )
        db.session().commit()
    response = grant(
        client,
        ticket_for(client, alice_pat, history),
        scope="download",
        auth=("photoz", "photoz-secret"),
    )
    assert_uma_error(response, 400, "invalid_scope")


def test_scope_the_client_is_not_registered_for_is_ignored(client, alice_pat, history):
    """ASMT-2: doctor-app is not pre-registered for 'write', so asking for it changes nothing."""
    share(client, {"type": "user", "username": "carol"}, [history])
    response = grant(
        client,
        ticket_for(client, alice_pat, history),
        scope="write",
        claim_token=id_token_for(client, "carol"),
    )
    assert response.status_code == 200
    info = introspect(client, alice_pat, response.json["access_token"])
    assert info["permissions"][0]["resource_scopes"] == ["read"]


# --- claim tokens that must be refused (SEC-PUSH-TRUST) ----------------------------------


def _craft(claims: dict, key: dict, alg="RS256") -> str:
    return jose_jwt.encode({"alg": alg, "kid": key["kid"]}, claims, RSAKey.import_key(key))


def _claims(sub: str, **overrides) -> dict:
    now = int(time.time())
    return {
        "iss": ISSUER,
        "sub": sub,
        "aud": ["doctor-app"],
        "iat": now,
        "exp": now + 300,
        **overrides,
    }


@pytest.fixture
def carol_sub(client):
    token = id_token_for(client, "carol")
    return jose_jwt.decode(token, RSAKey.import_key(client.get("/jwks").json["keys"][0])).claims[
        "sub"
    ]


@pytest.mark.parametrize(
    "case",
    ["forged", "expired", "alg_none", "wrong_audience", "wrong_issuer", "garbage", "wrong_format"],
)
def test_untrusted_claim_tokens_get_need_info(
    client, alice_pat, history, signing_jwk, carol_sub, case
):
    share(client, {"type": "user", "username": "carol"}, [history])
    fmt = ID_TOKEN
    if case == "forged":  # right kid, wrong key
        impostor = {**new_private_jwk(), "kid": signing_jwk["kid"]}
        token = _craft(_claims(carol_sub), impostor)
    elif case == "expired":
        token = _craft(_claims(carol_sub, exp=int(time.time()) - 3600), signing_jwk)
    elif case == "alg_none":

        def part(obj):
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

        token = part({"alg": "none"}) + "." + part(_claims(carol_sub)) + "."
    elif case == "wrong_audience":
        token = _craft(_claims(carol_sub, aud=["ehr"]), signing_jwk)
    elif case == "wrong_issuer":
        token = _craft(_claims(carol_sub, iss="http://evil.example"), signing_jwk)
    elif case == "garbage":
        token = "not.a.jwt"
    else:
        token, fmt = _craft(_claims(carol_sub), signing_jwk), "urn:example:saml"
    response = grant(client, ticket_for(client, alice_pat, history), claim_token=token, fmt=fmt)
    body = assert_uma_error(response, 403, "need_info")
    assert body["ticket"] and body["redirect_user"]


def test_a_genuine_crafted_token_is_accepted(client, alice_pat, history, signing_jwk, carol_sub):
    """The control for the table above: same construction, honest claims → RPT."""
    share(client, {"type": "user", "username": "carol"}, [history])
    token = _craft(_claims(carol_sub), signing_jwk)
    assert (
        grant(client, ticket_for(client, alice_pat, history), claim_token=token).status_code == 200
    )


# --- request errors (checklist 6.4, inherited from RFC 6749) ---------------------------


def test_missing_ticket_is_invalid_request(client):
    response = client.post("/token", data={"grant_type": UMA_GRANT}, auth=DOCTOR_AUTH)
    assert_uma_error(response, 400, "invalid_request")


@pytest.mark.parametrize("present", ["claim_token", "claim_token_format"])
def test_claim_token_and_format_go_together(client, alice_pat, history, present):
    data = {"grant_type": UMA_GRANT, "ticket": ticket_for(client, alice_pat, history), present: "x"}
    assert_uma_error(client.post("/token", data=data, auth=DOCTOR_AUTH), 400, "invalid_request")


def test_client_without_the_uma_grant_is_unauthorized(client, alice_pat, history):
    response = grant(client, ticket_for(client, alice_pat, history), auth=EHR_AUTH)
    assert_uma_error(response, 400, "unauthorized_client")


def test_bad_client_credentials_are_invalid_client(client, alice_pat, history):
    response = grant(client, ticket_for(client, alice_pat, history), auth=("doctor-app", "wrong"))
    assert response.status_code == 401 and response.json["error"] == "invalid_client"


def test_deleted_resource_makes_its_ticket_invalid(client, alice_pat, history):
    ticket = ticket_for(client, alice_pat, history)
    client.delete(f"/uma/resource_set/{history}", headers=bearer(alice_pat))
    assert_uma_error(
        grant(client, ticket, claim_token=id_token_for(client, "carol")), 400, "invalid_grant"
    )


# --- claims interaction endpoint rules (CI-*, SEC-CSRF-AS) -------------------------------


@pytest.fixture
def need_info_ticket(client, alice_pat, history):
    return grant(client, ticket_for(client, alice_pat, history)).json["ticket"]


@pytest.mark.parametrize(
    "params",
    [
        {"client_id": "nobody"},
        {"claims_redirect_uri": "http://evil.example/cb"},
        {"claims_redirect_uri": "http://localhost:8402/uma/claims-callback/"},
        {"claims_redirect_uri": DOCTOR_REDIRECT},  # CI-2: an OAuth redirect URI is not enough
        {"client_id": "ehr", "claims_redirect_uri": None},  # CI-1: none pre-registered
        {"client_id": None},
    ],
)
def test_claims_endpoint_never_redirects_to_an_unregistered_uri(client, need_info_ticket, params):
    """CI-1, CI-2, CI-3, SEC-OPENREDIR: an error page, not a redirect."""
    login(client, "bob")
    query = {
        "client_id": "doctor-app",
        "ticket": need_info_ticket,
        "claims_redirect_uri": CLAIMS_REDIRECT,
        "state": "s",
    }
    query.update(params)
    query = {k: v for k, v in query.items() if v is not None}
    response = client.get("/rqp/claims", query_string=query)
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_claims_endpoint_without_csrf_does_not_complete(client, need_info_ticket):
    """SEC-CSRF-AS: a cross-site auto-submitted form does nothing."""
    login(client, "bob")
    query = {
        "client_id": "doctor-app",
        "ticket": need_info_ticket,
        "claims_redirect_uri": CLAIMS_REDIRECT,
    }
    response = client.post("/rqp/claims", query_string=query, data={"proceed": "1"})
    assert response.status_code == 400 and "Location" not in response.headers


def test_claims_endpoint_bad_ticket_redirects_with_error_and_state(client):
    """CI-4: other failures go back to the client with ``error`` (and ``state``)."""
    login(client, "bob")
    response = client.get(
        "/rqp/claims", query_string={"client_id": "doctor-app", "ticket": "unknown", "state": "abc"}
    )
    assert response.status_code == 302
    returned = parse_qs(urlsplit(response.headers["Location"]).query)
    assert returned["error"] == ["invalid_request"] and returned["state"] == ["abc"]


def test_claims_endpoint_cancel_is_access_denied(client, need_info_ticket):
    login(client, "bob")
    query = {"client_id": "doctor-app", "ticket": need_info_ticket}  # the only registered URI
    page = client.get("/rqp/claims", query_string=query)
    response = client.post(
        "/rqp/claims", query_string=query, data={"csrf_token": csrf_token(page.data), "cancel": "1"}
    )
    returned = parse_qs(urlsplit(response.headers["Location"]).query)
    assert returned["error"] == ["access_denied"] and "state" not in returned


def test_ticket_used_at_claims_endpoint_cannot_be_used_again(
    client, alice_pat, history, need_info_ticket
):
    """TKT-3: presented at the claims endpoint → invalidated there."""
    login(client, "bob")
    query = {"client_id": "doctor-app", "ticket": need_info_ticket}
    page = client.get("/rqp/claims", query_string=query)
    client.post(
        "/rqp/claims",
        query_string=query,
        data={"csrf_token": csrf_token(page.data), "proceed": "1"},
    )
    assert_uma_error(grant(client, need_info_ticket), 400, "invalid_grant")


def test_submitted_ticket_lives_long_enough_to_poll(app, client, alice_pat, history):
    """TKT-5: the ticket of request_submitted outlives at least one ``interval``."""
    body = ask_as(client, alice_pat, history, "mallory").json
    with app.app_context():
        from authz_server.tickets import find_ticket

        row = find_ticket(db.session(), body["ticket"])
        assert (row.expires_at - row.created_at).total_seconds() >= 4 * body["interval"]


def test_pct_is_random_and_stored_only_as_a_digest(app, client, alice_pat, history):
    """SEC-GUESS, SEC-PCT: unguessable, reveals no claims, not kept in plain text."""
    from authz_server.models import Pct

    share(client, {"type": "user", "username": "carol"}, [history])
    carol = id_token_for(client, "carol")
    pcts = {
        grant(client, ticket_for(client, alice_pat, history), claim_token=carol).json["pct"]
        for _ in range(3)
    }
    assert len(pcts) == 3
    for pct in pcts:
        assert "carol" not in pct and len(pct) >= 40 and "." not in pct.removeprefix("pct.")
    with app.app_context():
        stored = {row.digest for row in db.session().query(Pct)}
    assert not stored & pcts


@pytest.mark.live
def test_racing_redemptions_of_one_ticket_yield_exactly_one_rpt(live_as):
    """TKT-2 under concurrency: the same ticket sent four times at once, through real HTTP
    and separate database connections, gives one RPT and three invalid_grant."""
    import threading

    import requests

    client = live_as.app.test_client()
    pat = code_flow_tokens(client, "alice")["access_token"]
    rid = client.post("/uma/resource_set", json=RECORD, headers=bearer(pat)).json["_id"]
    share(client, {"type": "user", "username": "carol"}, [rid])
    carol = id_token_for(client, "carol")
    for _ in range(3):
        ticket = ticket_for(client, pat, rid)
        start = threading.Barrier(4)
        statuses = []

        def redeem(ticket=ticket, start=start, statuses=statuses):
            start.wait()
            response = requests.post(
                live_as.url + "/token",
                auth=DOCTOR_AUTH,
                timeout=30,
                data={
                    "grant_type": UMA_GRANT,
                    "ticket": ticket,
                    "claim_token": carol,
                    "claim_token_format": ID_TOKEN,
                },
            )
            statuses.append((response.status_code, response.json().get("error")))

        threads = [threading.Thread(target=redeem) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses, key=str) == [(200, None)] + [(400, "invalid_grant")] * 3
