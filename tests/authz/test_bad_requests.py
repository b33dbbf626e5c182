"""Bad requests against the AS: each one gets a spec-shaped JSON 4xx, never a 500 or a page.

One table, one row per request: ``(id, method, path, build, status, error)``. ``path`` may name
lazily made state in braces (``{alice_rid}``); ``build`` turns that state into the keyword
arguments of the Flask test client. Checklist IDs lead the row ids (RREG-E1, PAT-2, PERM-4 …).
"""

import json
from functools import cached_property

import pytest
from werkzeug.datastructures import MultiDict

from tests.authz.conftest import (
    DOCTOR_AUTH,
    EHR_AUTH,
    EHR_REDIRECT,
    RECORD,
    authorize,
    bearer,
    code_flow_tokens,
    login,
    pkce_pair,
    redirect_params,
)

# Endpoints whose error examples carry Cache-Control: no-store: the protection API (FedAuthz §6),
# the token endpoint (RFC 6749 §5.2), and the RFC 7591 §3.2.2 registration error example.
NO_STORE_PREFIXES = (
    "/uma/resource_set",
    "/uma/permission",
    "/token",
    "/introspect",
    "/revoke",
    "/register",
)
# RFC 6750 §3.1 error codes: a response carrying one answers a Bearer-protected request.
BEARER_ERRORS = ("invalid_token", "insufficient_scope")
# Larger than the AS's 64 KiB MAX_CONTENT_LENGTH.
OVERSIZED = json.dumps({"resource_scopes": ["read"], "description": "x" * (65 * 1024)})
UNKNOWN_ID = "no-such-resource-id"


class Scenario:
    """State a row may need, made only when a row asks for it: PATs, resources, tokens, codes."""

    def __init__(self, request, client):
        self._request = request
        self.client = client

    def __getitem__(self, name: str):
        # Lets a row's path say "/uma/resource_set/{alice_rid}" (str.format_map).
        return getattr(self, name)

    @cached_property
    def alice_pat(self) -> str:
        return self._request.getfixturevalue("alice_pat")

    @cached_property
    def carol_pat(self) -> str:
        return self._request.getfixturevalue("carol_pat")

    @cached_property
    def alice_rid(self) -> str:
        return self._request.getfixturevalue("register")(self.alice_pat)

    @cached_property
    def carol_rid(self) -> str:
        """A resource Carol registered with her own PAT at the same RS."""
        return self._request.getfixturevalue("register")(self.carol_pat)

    @cached_property
    def profile_token(self) -> str:
        """A valid access token for Alice that lacks ``uma_protection``: not a PAT."""
        return code_flow_tokens(self.client, "alice", scope="openid profile")["access_token"]

    @cached_property
    def revoked_pat(self) -> str:
        """A PAT the EHR has revoked at the RFC 7009 endpoint."""
        pat = code_flow_tokens(self.client, "alice")["access_token"]
        response = self.client.post(
            "/revoke", data={"token": pat, "token_type_hint": "access_token"}, auth=EHR_AUTH
        )
        assert response.status_code == 200, response.data
        return pat

    @cached_property
    def pending_code(self) -> str:
        """A fresh, unredeemed authorization code for the EHR, bound to an S256 challenge."""
        login(self.client, "alice")
        _verifier, challenge = pkce_pair()
        params = {
            "response_type": "code",
            "client_id": EHR_AUTH[0],
            "redirect_uri": EHR_REDIRECT,
            "scope": "openid uma_protection",
            "state": "st-bad-requests",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        return redirect_params(authorize(self.client, params))["code"]


def _resolve(value, s: Scenario):
    return value(s) if callable(value) else value


# -- request builders: each returns a function of the Scenario giving client.open kwargs ---------


def pat_json(body, pat: str = "alice_pat"):
    """A JSON body (a dict/list, or a function of the Scenario making one) with a PAT."""
    return lambda s: {"headers": bearer(getattr(s, pat)), "json": _resolve(body, s)}


def pat_raw(data: str, content_type: str = "application/json", pat: str = "alice_pat"):
    """Raw body bytes under a given Content-Type, with a PAT."""
    return lambda s: {
        "headers": bearer(getattr(s, pat)),
        "data": data,
        "content_type": content_type,
    }


def pat_only(pat: str = "alice_pat"):
    return lambda s: {"headers": bearer(getattr(s, pat))}


def with_headers(headers: dict, body=RECORD):
    return lambda s: {"headers": headers, "json": body}


def form(data, auth=EHR_AUTH):
    """A form-encoded POST, authenticated with HTTP Basic unless ``auth`` is None."""
    return lambda s: {"data": _resolve(data, s), **({"auth": auth} if auth else {})}


def raw_json(data: str, content_type: str = "application/json"):
    return lambda s: {"data": data, "content_type": content_type}


def nothing(s):
    return {}


def perm_for(rid_attr: str, scopes):
    return lambda s: {"resource_id": getattr(s, rid_attr), "resource_scopes": scopes}


RREG = "/uma/resource_set"
PERM = "/uma/permission"
UMA_TICKET = "urn:ietf:params:oauth:grant-type:uma-ticket"
WRONG_VERIFIER = "w" * 64  # well-formed (RFC 7636 §4.1), just not the one behind the challenge

ROWS = [
    # ---- resource registration: body (RREG-E3 → 400 invalid_request) -------------------------
    (
        "RREG-E3-malformed-json",
        "POST",
        RREG,
        pat_raw('{"resource_scopes": ["read"'),
        400,
        "invalid_request",
    ),
    ("RREG-E3-json-array", "POST", RREG, pat_json([RECORD]), 400, "invalid_request"),
    ("RREG-E3-json-number", "POST", RREG, pat_raw("42"), 400, "invalid_request"),
    ("RREG-E3-json-string", "POST", RREG, pat_raw('"read"'), 400, "invalid_request"),
    (
        "RREG-E3-text-plain",
        "POST",
        RREG,
        pat_raw(json.dumps(RECORD), "text/plain"),
        400,
        "invalid_request",
    ),
    (
        "RREG-E3-form-encoded",
        "POST",
        RREG,
        pat_raw("resource_scopes=read&name=x", "application/x-www-form-urlencoded"),
        400,
        "invalid_request",
    ),
    ("RREG-E3-empty-body", "POST", RREG, pat_raw(""), 400, "invalid_request"),
    ("RREG-oversized-body-413", "POST", RREG, pat_raw(OVERSIZED), 413, "invalid_request"),
    (
        "RREG-E3-missing-resource_scopes",
        "POST",
        RREG,
        pat_json({"name": "no scopes"}),
        400,
        "invalid_request",
    ),
    (
        "RREG-E3-resource_scopes-not-array",
        "POST",
        RREG,
        pat_json({"resource_scopes": "read"}),
        400,
        "invalid_request",
    ),
    (
        "RREG-E3-resource_scopes-non-strings",
        "POST",
        RREG,
        pat_json({"resource_scopes": ["read", 7, None]}),
        400,
        "invalid_request",
    ),
    (
        "RREG-E3-resource_scopes-empty-string",
        "POST",
        RREG,
        pat_json({"resource_scopes": ["read", ""]}),
        400,
        "invalid_request",
    ),
    (
        "RREG-E3-name-not-string",
        "POST",
        RREG,
        pat_json({"resource_scopes": ["read"], "name": 42}),
        400,
        "invalid_request",
    ),
    (
        "RREG-E3-icon_uri-relative",
        "POST",
        RREG,
        pat_json({"resource_scopes": ["read"], "icon_uri": "/static/icons/history.svg"}),
        400,
        "invalid_request",
    ),
    (
        "RREG-E3-duplicate-member",
        "POST",
        RREG,
        pat_raw('{"name": "a", "name": "b", "resource_scopes": ["read"]}'),
        400,
        "invalid_request",
    ),
    (
        "RREG-E3-put-missing-resource_scopes",
        "PUT",
        RREG + "/{alice_rid}",
        pat_json({"name": "replacement without scopes"}),
        400,
        "invalid_request",
    ),
    # ---- resource registration: unknown and foreign _id (RREG-E1 → 404 not_found) -------------
    ("RREG-E1-get-unknown-id", "GET", f"{RREG}/{UNKNOWN_ID}", pat_only(), 404, "not_found"),
    ("RREG-E1-put-unknown-id", "PUT", f"{RREG}/{UNKNOWN_ID}", pat_json(RECORD), 404, "not_found"),
    ("RREG-E1-delete-unknown-id", "DELETE", f"{RREG}/{UNKNOWN_ID}", pat_only(), 404, "not_found"),
    ("RREG-E1-RREG-6-get-other-owner", "GET", RREG + "/{carol_rid}", pat_only(), 404, "not_found"),
    (
        "RREG-E1-RREG-6-put-other-owner",
        "PUT",
        RREG + "/{carol_rid}",
        pat_json(RECORD),
        404,
        "not_found",
    ),
    (
        "RREG-E1-RREG-6-delete-other-owner",
        "DELETE",
        RREG + "/{carol_rid}",
        pat_only(),
        404,
        "not_found",
    ),
    # ---- resource registration: methods (RREG-E2 → 405 unsupported_method_type + Allow) -------
    (
        "RREG-E2-patch-item",
        "PATCH",
        RREG + "/{alice_rid}",
        pat_json({"name": "patched"}),
        405,
        "unsupported_method_type",
    ),
    ("RREG-E2-delete-collection", "DELETE", RREG, pat_only(), 405, "unsupported_method_type"),
    ("RREG-E2-put-collection", "PUT", RREG, pat_json(RECORD), 405, "unsupported_method_type"),
    # ---- the PAT (PAT-2, PAT-3: RFC 6750 §3) ---------------------------------------------------
    ("PAT-2-rreg-missing-pat", "POST", RREG, with_headers({}), 401, "invalid_token"),
    (
        "PAT-2-rreg-garbage-pat",
        "POST",
        RREG,
        with_headers(bearer("not-a-real-token")),
        401,
        "invalid_token",
    ),
    (
        "PAT-3-rreg-basic-instead-of-bearer",
        "POST",
        RREG,
        lambda s: {"json": RECORD, "auth": EHR_AUTH},
        401,
        "invalid_token",
    ),
    (
        "PAT-2-rreg-token-without-uma_protection",
        "POST",
        RREG,
        pat_json(RECORD, pat="profile_token"),
        403,
        "insufficient_scope",
    ),
    (
        "PAT-2-rreg-revoked-pat",
        "POST",
        RREG,
        pat_json(RECORD, pat="revoked_pat"),
        401,
        "invalid_token",
    ),
    ("PAT-2-rreg-list-missing-pat", "GET", RREG, nothing, 401, "invalid_token"),
    (
        "PAT-2-perm-missing-pat",
        "POST",
        PERM,
        lambda s: {"json": {"resource_id": UNKNOWN_ID, "resource_scopes": []}},
        401,
        "invalid_token",
    ),
    (
        "PAT-2-perm-token-without-uma_protection",
        "POST",
        PERM,
        pat_json({"resource_id": UNKNOWN_ID, "resource_scopes": []}, pat="profile_token"),
        403,
        "insufficient_scope",
    ),
    # ---- permission endpoint (PERM-2 shape → 400 invalid_request; PERM-4/5) --------------------
    ("PERM-2-malformed-json", "POST", PERM, pat_raw('{"resource_id": '), 400, "invalid_request"),
    ("PERM-2-empty-array", "POST", PERM, pat_json([]), 400, "invalid_request"),
    ("PERM-2-array-with-non-object", "POST", PERM, pat_json(["read"]), 400, "invalid_request"),
    (
        "PERM-2-missing-resource_id",
        "POST",
        PERM,
        pat_json({"resource_scopes": ["read"]}),
        400,
        "invalid_request",
    ),
    (
        "PERM-2-resource_id-not-string",
        "POST",
        PERM,
        pat_json({"resource_id": 12345, "resource_scopes": ["read"]}),
        400,
        "invalid_request",
    ),
    (
        "PERM-2-missing-resource_scopes",
        "POST",
        PERM,
        pat_json(lambda s: {"resource_id": s.alice_rid}),
        400,
        "invalid_request",
    ),
    (
        "PERM-2-resource_scopes-not-array",
        "POST",
        PERM,
        pat_json(perm_for("alice_rid", "read")),
        400,
        "invalid_request",
    ),
    (
        "PERM-4-unknown-resource_id",
        "POST",
        PERM,
        pat_json({"resource_id": UNKNOWN_ID, "resource_scopes": ["read"]}),
        400,
        "invalid_resource_id",
    ),
    (
        "PERM-5-other-owners-resource",
        "POST",
        PERM,
        pat_json(perm_for("carol_rid", ["read"])),
        400,
        "invalid_resource_id",
    ),
    (
        "PERM-4-one-bad-id-in-array",
        "POST",
        PERM,
        pat_json(
            lambda s: [
                {"resource_id": s.alice_rid, "resource_scopes": ["read"]},
                {"resource_id": UNKNOWN_ID, "resource_scopes": ["read"]},
            ]
        ),
        400,
        "invalid_resource_id",
    ),
    (
        "PERM-4-unregistered-scope",
        "POST",
        PERM,
        pat_json(perm_for("alice_rid", ["read", "delete"])),
        400,
        "invalid_scope",
    ),
    ("RREG-E2-perm-get", "GET", PERM, pat_only(), 405, "unsupported_method_type"),
    # ---- token endpoint (RFC 6749 §5.2, checklist 6.4) -----------------------------------------
    # §5.2: a missing required parameter is invalid_request; unsupported_grant_type is for a
    # grant type the AS does not support, and no grant type was named.
    (
        "TOKEN-missing-grant_type",
        "POST",
        "/token",
        form({"scope": "uma_protection"}),
        400,
        "invalid_request",
    ),
    (
        "TOKEN-unknown-grant_type",
        "POST",
        "/token",
        form({"grant_type": "urn:example:not-a-grant"}),
        400,
        "unsupported_grant_type",
    ),
    (
        "TOKEN-repeated-grant_type",
        "POST",
        "/token",
        form(
            MultiDict([("grant_type", "client_credentials"), ("grant_type", "client_credentials")])
        ),
        400,
        "invalid_request",
    ),
    (
        "TOKEN-bad-client-secret-basic",
        "POST",
        "/token",
        form({"grant_type": "client_credentials"}, auth=("ehr", "wrong-secret")),
        401,
        "invalid_client",
    ),
    (
        "TOKEN-unknown-client-basic",
        "POST",
        "/token",
        form({"grant_type": "client_credentials"}, auth=("no-such-client", "whatever")),
        401,
        "invalid_client",
    ),
    (
        "TOKEN-no-client-authentication",
        "POST",
        "/token",
        form({"grant_type": "client_credentials"}, auth=None),
        401,
        "invalid_client",
    ),
    (
        "TOKEN-unauthorized_client-grant",
        "POST",
        "/token",
        form({"grant_type": "client_credentials"}, auth=DOCTOR_AUTH),
        400,
        "unauthorized_client",
    ),
    (
        "TOKEN-missing-code",
        "POST",
        "/token",
        form({"grant_type": "authorization_code", "redirect_uri": EHR_REDIRECT}),
        400,
        "invalid_request",
    ),
    (
        "TOKEN-bad-code",
        "POST",
        "/token",
        form(
            {
                "grant_type": "authorization_code",
                "code": "not-a-code",
                "redirect_uri": EHR_REDIRECT,
                "code_verifier": WRONG_VERIFIER,
            }
        ),
        400,
        "invalid_grant",
    ),
    (
        "TOKEN-bad-refresh-token",
        "POST",
        "/token",
        form({"grant_type": "refresh_token", "refresh_token": "rt.not-a-refresh-token"}),
        400,
        "invalid_grant",
    ),
    (
        "TOKEN-code_verifier-mismatch",
        "POST",
        "/token",
        form(
            lambda s: {
                "grant_type": "authorization_code",
                "code": s.pending_code,
                "redirect_uri": EHR_REDIRECT,
                "code_verifier": WRONG_VERIFIER,
            }
        ),
        400,
        "invalid_grant",
    ),
    # ---- introspection (INT-1, INT-2) ----------------------------------------------------------
    (
        "INT-2-no-authorization",
        "POST",
        "/introspect",
        form({"token": "anything"}, auth=None),
        401,
        "invalid_client",
    ),
    # RFC 7662 §2.3: a bad bearer token used to authorize the call gets 401 "as described in
    # Section 3 of RFC 6750", i.e. a Bearer challenge with invalid_token.
    (
        "INT-2-garbage-bearer",
        "POST",
        "/introspect",
        lambda s: {"data": {"token": "anything"}, "headers": bearer("not-a-real-token")},
        401,
        "invalid_token",
    ),
    (
        "INT-2-bad-client-secret",
        "POST",
        "/introspect",
        form({"token": "anything"}, auth=("ehr", "wrong-secret")),
        401,
        "invalid_client",
    ),
    (
        "INT-1-token-param-missing",
        "POST",
        "/introspect",
        form({"token_type_hint": "access_token"}),
        400,
        "invalid_request",
    ),
    (
        "INT-1-token-param-missing-with-pat",
        "POST",
        "/introspect",
        lambda s: {"data": {"token_type_hint": "access_token"}, "headers": bearer(s.alice_pat)},
        400,
        "invalid_request",
    ),
    # ---- revocation (RFC 7009 §2.1) ------------------------------------------------------------
    (
        "REV-token-param-missing",
        "POST",
        "/revoke",
        form({"token_type_hint": "access_token"}),
        400,
        "invalid_request",
    ),
    (
        "REV-bad-client-secret",
        "POST",
        "/revoke",
        form({"token": "anything"}, auth=("ehr", "wrong-secret")),
        401,
        "invalid_client",
    ),
    # ---- dynamic client registration (RFC 7591 §3.2.2, DISC-6) ---------------------------------
    (
        "DCR-malformed-json",
        "POST",
        "/register",
        raw_json('{"redirect_uris": ["http://localhost:9000/cb"'),
        400,
        "invalid_client_metadata",
    ),
    (
        "DCR-array-body",
        "POST",
        "/register",
        raw_json('[{"redirect_uris": ["http://localhost:9000/cb"]}]'),
        400,
        "invalid_client_metadata",
    ),
    (
        "DCR-text-plain",
        "POST",
        "/register",
        raw_json('{"redirect_uris": ["http://localhost:9000/cb"]}', "text/plain"),
        400,
        "invalid_client_metadata",
    ),
    (
        "DCR-redirect_uri-not-a-uri",
        "POST",
        "/register",
        lambda s: {"json": {"redirect_uris": ["not a uri"]}},
        400,
        ("invalid_redirect_uri", "invalid_client_metadata"),
    ),
    (
        "DCR-unsupported-grant_type",
        "POST",
        "/register",
        lambda s: {
            "json": {
                "redirect_uris": ["http://localhost:9000/cb"],
                "grant_types": ["urn:example:not-a-grant"],
            }
        },
        400,
        "invalid_client_metadata",
    ),
    (
        "DISC-6-claims_redirect_uris-not-array",
        "POST",
        "/register",
        lambda s: {
            "json": {
                "redirect_uris": ["http://localhost:9000/cb"],
                "grant_types": ["authorization_code", UMA_TICKET],
                "claims_redirect_uris": "http://localhost:9000/claims",
            }
        },
        400,
        "invalid_client_metadata",
    ),
    # ---- userinfo (OIDC Core §5.3.3 → RFC 6750) ------------------------------------------------
    ("USERINFO-no-token", "GET", "/userinfo", nothing, 401, "invalid_token"),
    (
        "USERINFO-garbage-token",
        "GET",
        "/userinfo",
        lambda s: {"headers": bearer("not-a-real-token")},
        401,
        "invalid_token",
    ),
    # ---- unknown API paths answer JSON, not a page ---------------------------------------------
    ("UMA-unknown-path", "GET", "/uma/no-such-endpoint", nothing, 404, "not_found"),
    (
        "UMA-unknown-subpath-of-item",
        "POST",
        RREG + "/some-id/extra",
        pat_json(RECORD),
        404,
        "not_found",
    ),
]


@pytest.fixture
def scenario(request, client):
    return Scenario(request, client)


@pytest.mark.parametrize(
    ("method", "path", "build", "status", "error"),
    [row[1:] for row in ROWS],
    ids=[row[0] for row in ROWS],
)
def test_bad_request_gets_json_error(client, scenario, method, path, build, status, error):
    """Each bad request: the expected 4xx, a JSON object with an ``error`` string, no traceback."""
    kwargs = build(scenario)
    response = client.open(path.format_map(scenario), method=method, **kwargs)
    text = response.get_data(as_text=True)

    assert response.status_code == status, text
    assert response.mimetype == "application/json", (response.content_type, text)
    assert "Traceback" not in text and "<html" not in text.lower()
    body = json.loads(text)
    assert isinstance(body, dict), body
    assert isinstance(body.get("error"), str), body
    allowed = error if isinstance(error, tuple) else (error,)
    assert body["error"] in allowed, body
    assert isinstance(body.get("error_description", ""), str), body

    if path.startswith(NO_STORE_PREFIXES):
        assert "no-store" in response.headers.get("Cache-Control", ""), response.headers
    challenge = response.headers.get("WWW-Authenticate", "")
    if error in BEARER_ERRORS:
        # RFC 6750 §3: a request without a token, or whose token does not enable access,
        # MUST get a WWW-Authenticate: Bearer challenge naming the error.
        assert challenge.startswith("Bearer "), response.headers
        assert f'error="{body["error"]}"' in challenge, challenge
    if body["error"] == "invalid_client" and status == 401:
        # RFC 6749 §5.2: a 401 carries a challenge, in the scheme the client used if any.
        assert challenge, response.headers
        if "auth" in kwargs:
            assert challenge.startswith("Basic "), challenge
    if status == 405:
        allow = [m.strip() for m in response.headers.get("Allow", "").split(",") if m.strip()]
        assert allow and method not in allow, response.headers


def test_table_has_at_least_forty_rows():
    assert len(ROWS) >= 40
    assert len({row[0] for row in ROWS}) == len(ROWS), "row ids must be unique"


def test_extension_members_are_ignored(client, alice_pat):
    """Unknown members such as ``x_ext`` are extensions, which the AS ignores (checklist §0)."""
    response = client.post(
        "/uma/resource_set", json={**RECORD, "x_ext": 1}, headers=bearer(alice_pat)
    )
    assert response.status_code == 201, response.json
    rid = response.json["_id"]
    stored = client.get(f"/uma/resource_set/{rid}", headers=bearer(alice_pat)).json
    assert stored["resource_scopes"] == RECORD["resource_scopes"]
    assert "x_ext" not in stored
