"""The OpenID Provider: sign-in, consent, the code flow, tokens, userinfo, revocation, DCR."""

import jwt
import pytest

from tests.authz.conftest import (
    EHR_AUTH,
    EHR_REDIRECT,
    ISSUER,
    authorize,
    bearer,
    code_flow_tokens,
    csrf_token,
    exchange_code,
    login,
    pkce_pair,
    redirect_params,
    refresh,
)

CONSENT_PROTECTION = (
    "let Alice&#39;s EHR register your records here so this server can protect them "
    "while you are away"
)


def code_request(**overrides) -> tuple[dict, str]:
    """Authorization request parameters (PKCE S256) and the verifier that goes with them."""
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": "ehr",
        "redirect_uri": EHR_REDIRECT,
        "scope": "openid profile email uma_protection",
        "state": "xyz",
        "nonce": "n-0S6",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return params, verifier


def run_code_flow(client, params: dict, verifier: str, auth=EHR_AUTH):
    """Consent as the signed-in person, then exchange the code; returns (redirect, token resp)."""
    back = redirect_params(authorize(client, params))
    return back, exchange_code(client, back["code"], verifier, params["redirect_uri"], auth)


def register_client(client, **metadata) -> dict:
    response = client.post("/register", json=metadata)
    assert response.status_code == 201, response.json
    return response.json


# --- sign-in and consent pages -------------------------------------------------------


def test_login_without_csrf_token_is_refused(client):
    """Every form is CSRF-protected: a forged sign-in post does nothing."""
    response = client.post("/login", data={"username": "alice", "password": "alice"})
    assert response.status_code == 400
    assert client.get("/console/").status_code == 302  # still signed out


def test_login_wrong_password_says_so(client):
    response = login(client, "alice", "wrong")
    assert response.status_code == 401
    assert b"Wrong username or password" in response.data


def test_login_next_is_not_an_open_redirect(client):
    page = client.get("/login")
    response = client.post(
        "/login?next=http://evil.example/steal",
        data={"username": "alice", "password": "alice", "csrf_token": csrf_token(page.data)},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/console/"


def test_authorize_sends_a_signed_out_person_to_login(client):
    params, _ = code_request()
    response = client.get("/authorize", query_string=params)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_consent_page_says_in_plain_words_what_uma_protection_means(client):
    login(client, "alice")
    params, _ = code_request()
    page = client.get("/authorize", query_string=params)
    assert page.status_code == 200
    text = page.data.decode()
    assert CONSENT_PROTECTION in text
    assert "see your email address" in text
    assert "Alice&#39;s EHR" in text


def test_consent_without_csrf_token_issues_no_code(client):
    login(client, "alice")
    params, _ = code_request()
    response = client.post("/authorize", query_string=params, data={"allow": "1"})
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_deny_redirects_with_access_denied_and_state(client):
    login(client, "alice")
    params, _ = code_request()
    back = redirect_params(authorize(client, params, allow=False))
    assert back["error"] == "access_denied" and back["state"] == "xyz"
    assert "code" not in back


# --- the code flow -------------------------------------------------------------------


def test_code_flow_returns_state_and_full_token_response(client):
    login(client, "alice")
    back, response = run_code_flow(client, *code_request())
    assert back["state"] == "xyz"
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["refresh_token"].startswith("rt.")
    assert set(body["scope"].split()) == {"openid", "profile", "email", "uma_protection"}
    assert body["id_token"]


def test_id_token_is_rs256_with_kid_and_verifies_against_jwks(client):
    """OIDC Core §3.1.3.7, verified with PyJWT, an implementation independent of ours."""
    login(client, "alice")
    _, response = run_code_flow(client, *code_request())
    id_token = response.json["id_token"]
    header = jwt.get_unverified_header(id_token)
    assert header["alg"] == "RS256"
    jwks = client.get("/jwks").json
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(
        id_token, jwt.PyJWK(key).key, algorithms=["RS256"], audience="ehr", issuer=ISSUER
    )
    assert claims["nonce"] == "n-0S6"
    assert claims["email"] == "alice@patients.example"
    assert claims["preferred_username"] == "alice"
    assert claims["at_hash"]
    assert claims["exp"] > claims["iat"]


def test_access_token_is_a_signed_jwt_with_jti(client):
    """HEART: signed JWT access tokens (RFC 9068) with ``kid`` and ``jti``."""
    tokens = code_flow_tokens(client, "alice")
    token = tokens["access_token"]
    header = jwt.get_unverified_header(token)
    key = next(k for k in client.get("/jwks").json["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=["RS256"], audience="ehr")
    assert claims["jti"] and claims["iss"] == ISSUER and claims["client_id"] == "ehr"
    assert claims["exp"] - claims["iat"] == 900


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://localhost:8401/protect/callback/",  # trailing slash
        "http://localhost:8401/protect/callback?x=1",  # extra query
        "http://localhost:8401/protect",  # prefix of a registered URI
        "http://LOCALHOST:8401/protect/callback",  # case differs
        "https://evil.example/cb",
    ],
)
def test_redirect_uri_must_match_exactly(client, redirect_uri):
    """Exact string comparison: the AS shows an error and never redirects there."""
    login(client, "alice")
    params, _ = code_request(redirect_uri=redirect_uri)
    response = client.get("/authorize", query_string=params)
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_unknown_client_gets_an_error_page_not_a_redirect(client):
    login(client, "alice")
    params, _ = code_request(client_id="nobody")
    response = client.get("/authorize", query_string=params)
    assert response.status_code == 400
    assert b"cannot be completed" in response.data


def test_prompt_none_cannot_show_consent_so_it_says_consent_required(client):
    login(client, "alice")
    params, _ = code_request(prompt="none")
    back = redirect_params(client.get("/authorize", query_string=params))
    assert back["error"] == "consent_required" and back["state"] == "xyz"


def test_code_is_single_use(client):
    login(client, "alice")
    params, verifier = code_request()
    back = redirect_params(authorize(client, params))
    assert exchange_code(client, back["code"], verifier).status_code == 200
    again = exchange_code(client, back["code"], verifier)
    assert again.status_code == 400 and again.json["error"] == "invalid_grant"


# --- PKCE ----------------------------------------------------------------------------


def test_pkce_plain_is_refused(client):
    login(client, "alice")
    params, verifier = code_request(code_challenge_method="plain")
    back = redirect_params(client.get("/authorize", query_string=params))
    assert back["error"] == "invalid_request"


def test_pkce_challenge_without_method_is_refused(client):
    """RFC 7636 would default to "plain"; we accept only an explicit S256."""
    login(client, "alice")
    params, _ = code_request()
    params.pop("code_challenge_method")
    back = redirect_params(client.get("/authorize", query_string=params))
    assert back["error"] == "invalid_request"


def test_pkce_wrong_verifier_is_invalid_grant(client):
    login(client, "alice")
    params, _ = code_request()
    _, response = run_code_flow(client, params, "x" * 50)
    assert response.status_code == 400 and response.json["error"] == "invalid_grant"


def test_public_client_must_use_pkce(client):
    public = register_client(
        client,
        client_name="Pocket app",
        redirect_uris=["http://127.0.0.1:9999/cb"],
        token_endpoint_auth_method="none",
        scope="openid",
    )
    assert "client_secret" not in public
    login(client, "alice")
    base = {
        "response_type": "code",
        "client_id": public["client_id"],
        "redirect_uri": "http://127.0.0.1:9999/cb",
        "scope": "openid",
        "state": "s",
    }
    back = redirect_params(client.get("/authorize", query_string=base))
    assert back["error"] == "invalid_request"

    params, verifier = code_request(
        client_id=public["client_id"], redirect_uri="http://127.0.0.1:9999/cb", scope="openid"
    )
    back = redirect_params(authorize(client, params))
    response = exchange_code(
        client,
        back["code"],
        verifier,
        "http://127.0.0.1:9999/cb",
        auth=None,
        client_id=public["client_id"],
    )
    assert response.status_code == 200, response.json
    assert response.json["id_token"]


# --- client authentication, refresh, empty parameters --------------------------------


def test_client_secret_post_is_accepted(client):
    login(client, "alice")
    params, verifier = code_request()
    back = redirect_params(authorize(client, params))
    response = exchange_code(
        client,
        back["code"],
        verifier,
        auth=None,
        client_id="ehr",
        client_secret="ehr-demo-secret",
    )
    assert response.status_code == 200, response.json


def test_refresh_rotates_and_old_refresh_token_dies(client):
    tokens = code_flow_tokens(client, "alice")
    first = refresh(client, tokens["refresh_token"])
    assert first.status_code == 200, first.json
    body = first.json
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["refresh_token"] != tokens["refresh_token"]
    assert client.get("/userinfo", headers=bearer(body["access_token"])).status_code == 200
    # The old access token went with the old refresh token.
    assert client.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 401
    replay = refresh(client, tokens["refresh_token"])
    assert replay.status_code == 400 and replay.json["error"] == "invalid_grant"


def test_empty_parameters_count_as_absent(client):
    """RFC 6749 §3.1: ``username=&password=&scope=`` as python-keycloak sends them."""
    response = client.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "username": "",
            "password": "",
            "code": "",
            "redirect_uri": "",
            "scope": "",
        },
        auth=EHR_AUTH,
    )
    assert response.status_code == 200, response.json
    assert response.json["token_type"] == "Bearer" and response.json["expires_in"] == 900


def test_client_credentials_gives_a_pat_without_openid(client):
    """PAT-5, organization case: scope=openid is meaningless without a user and is dropped."""
    response = client.post(
        "/token", data={"grant_type": "client_credentials", "scope": "openid"}, auth=EHR_AUTH
    )
    assert response.status_code == 200
    assert response.json["scope"] == "profile email uma_protection"
    assert "refresh_token" not in response.json
    assert "id_token" not in response.json


def test_client_not_allowed_client_credentials(client):
    response = client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        auth=("doctor-app", "doctor-demo-secret"),
    )
    assert response.status_code == 400 and response.json["error"] == "unauthorized_client"


# --- userinfo ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_userinfo_with_bearer(client, method):
    token = code_flow_tokens(client, "bob", scope="openid profile email")["access_token"]
    response = client.open("/userinfo", method=method, headers=bearer(token))
    assert response.status_code == 200
    assert response.json["email"] == "bob@surgery.example"
    assert response.json["email_verified"] is True
    assert response.json["name"] == "Dr. Bob Surgeon"


def test_userinfo_releases_only_what_scope_allows(client):
    token = code_flow_tokens(client, "bob", scope="openid")["access_token"]
    info = client.get("/userinfo", headers=bearer(token)).json
    assert set(info) == {"sub"}


def test_userinfo_without_openid_scope_is_refused(client):
    token = client.post("/token", data={"grant_type": "client_credentials"}, auth=EHR_AUTH).json[
        "access_token"
    ]
    response = client.get("/userinfo", headers=bearer(token))
    assert response.status_code == 403
    assert response.json["error"] == "insufficient_scope"


# --- revocation (RFC 7009) -----------------------------------------------------------


@pytest.mark.parametrize("which", ["access_token", "refresh_token"])
def test_revocation_ends_the_grant(client, which):
    tokens = code_flow_tokens(client, "alice")
    response = client.post(
        "/revoke", data={"token": tokens[which], "token_type_hint": which}, auth=EHR_AUTH
    )
    assert response.status_code == 200
    assert client.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 401
    refreshed = refresh(client, tokens["refresh_token"])
    assert refreshed.json["error"] == "invalid_grant"


def test_revoking_an_unknown_token_is_fine(client):
    """RFC 7009 §2.2: invalid tokens do not cause an error response."""
    response = client.post("/revoke", data={"token": "no-such-token"}, auth=EHR_AUTH)
    assert response.status_code == 200


def test_a_client_cannot_revoke_another_clients_token(client):
    tokens = code_flow_tokens(client, "alice")
    client.post(
        "/revoke", data={"token": tokens["access_token"]}, auth=("doctor-app", "doctor-demo-secret")
    )
    assert client.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 200


# --- dynamic client registration (RFC 7591) -------------------------------------------


def test_registration_accepts_claims_redirect_uris(client):
    """DISC-6: claims_redirect_uris is accepted, stored and returned."""
    body = register_client(
        client,
        client_name="Clinic app",
        redirect_uris=["http://127.0.0.1:9000/cb"],
        claims_redirect_uris=["http://127.0.0.1:9000/claims"],
        grant_types=["authorization_code", "urn:ietf:params:oauth:grant-type:uma-ticket"],
    )
    assert body["claims_redirect_uris"] == ["http://127.0.0.1:9000/claims"]
    assert body["client_secret"] and body["client_id"]
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    # The secret works at the token endpoint; the AS stored only its digest.
    from authz_server import db
    from authz_server.models import Client

    with client.application.app_context():
        stored = db.session().query(Client).filter_by(client_id=body["client_id"]).one()
        assert stored.client_secret != body["client_secret"]
        assert stored.claims_redirect_uris == ["http://127.0.0.1:9000/claims"]


def test_registration_refuses_unsupported_grant_type(client):
    response = client.post(
        "/register", json={"redirect_uris": ["http://127.0.0.1/cb"], "grant_types": ["password"]}
    )
    assert response.status_code == 400
    assert response.json["error"] == "invalid_client_metadata"


def test_revocation_with_an_unknown_hint_is_400_unsupported_token_type(client):
    """RFC 7009 §2.2.1."""
    response = client.post(
        "/revoke", data={"token": "x", "token_type_hint": "id_token"}, auth=EHR_AUTH
    )
    assert response.status_code == 400
    assert response.json["error"] == "unsupported_token_type"


@pytest.mark.parametrize(
    ("path", "query", "form"),
    [
        ("/authorize", "response_type=%E2%98%83&client_id=ehr", None),
        ("/authorize", "%E2%98%83=1&%E2%98%83=2", None),
        ("/token", "", "grant_type=%E2%98%83"),
        ("/token", "", "%E2%98%83=1&%E2%98%83=2&grant_type=client_credentials"),
    ],
)
def test_non_ascii_oauth_parameters_are_refused_cleanly(client, path, query, form):
    """RFC 6749 Appendix A: parameters are printable ASCII. Found by fuzzing: Authlib raised
    ValueError (a 500) when such a value reached an error description."""
    login(client, "alice")
    if form is None:
        response = client.get(f"{path}?{query}")
        assert response.status_code == 400 and b"RFC 6749" in response.data
    else:
        response = client.post(
            path, data=form, auth=EHR_AUTH, content_type="application/x-www-form-urlencoded"
        )
        assert response.status_code == 400 and response.json["error"] == "invalid_request"


@pytest.mark.parametrize(
    "metadata",
    [
        {"redirect_uris": [5]},
        {"client_name": {"a": 1}},
        {"jwks": 5},
        {"grant_types": "x"},
        {"scope": ["openid"]},
        {"claims_redirect_uris": "http://127.0.0.1/cb"},
    ],
)
def test_registration_with_wrong_json_types_is_invalid_client_metadata(client, metadata):
    """Found by fuzzing: Authlib's metadata checks assume the JSON types are right."""
    response = client.post("/register", json={"redirect_uris": ["http://127.0.0.1/cb"], **metadata})
    assert response.status_code == 400
    assert response.json["error"] == "invalid_client_metadata"
