"""Discovery documents: OpenID Provider metadata and UMA 2.0 AS metadata (checklist DISC-*)."""

UMA_TICKET_GRANT = "urn:ietf:params:oauth:grant-type:uma-ticket"
ID_TOKEN_FORMAT = "http://openid.net/specs/openid-connect-core-1_0.html#IDToken"
SCOPES_SUPPORTED = ["openid", "profile", "email", "uma_protection"]
GRANT_TYPES = ["authorization_code", "refresh_token", "client_credentials", UMA_TICKET_GRANT]
CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

# Paths of every endpoint below the issuer. Both documents and the views use these, so a
# path changes in one place.
PATHS = {
    "authorization_endpoint": "/authorize",
    "token_endpoint": "/token",
    "userinfo_endpoint": "/userinfo",
    "jwks_uri": "/jwks",
    "registration_endpoint": "/register",
    "revocation_endpoint": "/revoke",
    "introspection_endpoint": "/introspect",
    "resource_registration_endpoint": "/uma/resource_set",
    "permission_endpoint": "/uma/permission",
    "claims_interaction_endpoint": "/rqp/claims",
}


def _endpoints(issuer: str, *names: str) -> dict:
    return {name: issuer + PATHS[name] for name in names}


def openid_configuration(issuer: str) -> dict:
    """OpenID Connect Discovery 1.0 §3 (and RFC 8414 fields)."""
    return {
        "issuer": issuer,
        **_endpoints(
            issuer,
            "authorization_endpoint",
            "token_endpoint",
            "userinfo_endpoint",
            "jwks_uri",
            "registration_endpoint",
            "revocation_endpoint",
            "introspection_endpoint",
        ),
        "scopes_supported": SCOPES_SUPPORTED,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": GRANT_TYPES,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "bearer",  # a PAT (UMA FedAuthz §5)
        ],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "name",
            "preferred_username",
            "email",
            "email_verified",
        ],
        "request_parameter_supported": False,
        "claims_parameter_supported": False,
    }


def uma2_configuration(issuer: str) -> dict:
    """UMA Grant §2 and FedAuthz §2: OAuth AS metadata plus the UMA endpoints."""
    doc = openid_configuration(issuer)
    doc.update(
        _endpoints(
            issuer,
            "resource_registration_endpoint",
            "permission_endpoint",
            "claims_interaction_endpoint",
        )
    )
    doc["uma_profiles_supported"] = []
    # DISC-7: the claim token formats this AS accepts in pushed claims.
    doc["claim_token_formats_supported"] = [ID_TOKEN_FORMAT]
    return doc
