"""Discovery documents (checklist section 1) and Keycloak-shaped aliases."""

import pytest

from tests.authz.conftest import build_app

UMA_GRANT = "urn:ietf:params:oauth:grant-type:uma-ticket"


def test_uma2_configuration_at_issuer_plus_well_known(client):
    """DISC-1, DISC-2: the document is at issuer + /.well-known/uma2-configuration."""
    doc = client.get("/.well-known/uma2-configuration").json
    assert doc["issuer"] == "http://localhost"
    for field in ("authorization_endpoint", "token_endpoint", "response_types_supported"):
        assert doc[field]
    assert "code" in doc["response_types_supported"]
    assert "uma_protection" in doc["scopes_supported"]
    assert UMA_GRANT in doc["grant_types_supported"]


def test_uma2_configuration_declares_protection_api(client):
    """DISC-3, DISC-4, DISC-5: UMA endpoints and introspection are declared, all absolute."""
    doc = client.get("/.well-known/uma2-configuration").json
    for field in (
        "permission_endpoint",
        "resource_registration_endpoint",
        "introspection_endpoint",
        "claims_interaction_endpoint",
        "registration_endpoint",
        "jwks_uri",
        "revocation_endpoint",
    ):
        assert doc[field].startswith("http://localhost/"), field
    assert doc["uma_profiles_supported"] == []


def test_claim_token_formats_are_documented(client):
    """DISC-7: the ID token claim-token format is listed."""
    doc = client.get("/.well-known/uma2-configuration").json
    assert doc["claim_token_formats_supported"] == [
        "http://openid.net/specs/openid-connect-core-1_0.html#IDToken"
    ]


def test_openid_configuration(client):
    """OIDC Discovery §3: required provider metadata; PKCE S256 only; RS256 ID tokens."""
    doc = client.get("/.well-known/openid-configuration").json
    assert doc["issuer"] == "http://localhost"
    assert doc["subject_types_supported"] == ["public"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert {"client_secret_basic", "client_secret_post"} <= set(
        doc["token_endpoint_auth_methods_supported"]
    )
    assert doc["userinfo_endpoint"] == "http://localhost/userinfo"


def test_issuer_with_a_path_appends_well_known(database_url, signing_jwk):
    """DISC-1: issuer http://localhost/realms/x → http://localhost/realms/x/.well-known/…
    (appended, not inserted after the host as RFC 8414 would)."""
    app = build_app(database_url, signing_jwk, ISSUER="http://localhost/realms/x")
    client = app.test_client()
    doc = client.get("/realms/x/.well-known/uma2-configuration").json
    assert doc["issuer"] == "http://localhost/realms/x"
    assert doc["token_endpoint"] == "http://localhost/realms/x/token"
    assert client.get("/.well-known/uma2-configuration").status_code == 404
    # Every endpoint really lives under the issuer path.
    assert client.get("/realms/x/jwks").status_code == 200
    assert client.get("/realms/x/login").status_code == 200
    app.extensions["authz_db"].engine.dispose()


@pytest.mark.parametrize(
    "path",
    [
        "/realms/uma-health/.well-known/uma2-configuration",
        "/realms/uma-health/.well-known/openid-configuration",
    ],
)
def test_keycloak_alias_serves_the_same_document(client, path):
    """Documented alias for Keycloak clients: same document, real issuer and endpoints."""
    canonical = client.get("/.well-known/" + path.rsplit("/", 1)[1]).json
    assert client.get(path).json == canonical


def test_keycloak_alias_unknown_realm_is_404(client):
    response = client.get("/realms/other/.well-known/uma2-configuration")
    assert response.status_code == 404
    assert response.json["error"] == "not_found"


def test_jwks_publishes_public_keys_only(client):
    keys = client.get("/jwks").json["keys"]
    assert len(keys) == 1
    assert keys[0]["kty"] == "RSA" and keys[0]["alg"] == "RS256" and keys[0]["kid"]
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(keys[0])


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok"}
