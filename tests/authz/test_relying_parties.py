"""Third-party relying parties drive the live AS over real HTTP: Authlib, pyoidc, python-keycloak.

None of these libraries knows this code base, so when they interoperate the wire contract holds:
discovery (DISC-*), the OIDC code flow with PKCE, ID tokens verified against the published JWKS,
and the UMA protection API (PAT-*, RREG, PERM-*) as a Keycloak client sees it.
"""

import json
import time
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oidc.core import CodeIDToken
from joserfc import jwt as joserfc_jwt
from joserfc.jwk import KeySet
from jwkest import BadSignature
from keycloak import (
    KeycloakGetError,
    KeycloakOpenID,
    KeycloakOpenIDConnection,
    KeycloakPostError,
    KeycloakUMA,
)
from keycloak.exceptions import KeycloakPutError
from keycloak.uma_permissions import UMAPermission
from oic.oic import Client as OicClient
from oic.oic.message import AccessTokenResponse, AuthorizationResponse
from oic.utils.authn.client import CLIENT_AUTHN_METHOD

from authz_server import db
from authz_server.grants import service_account_for
from authz_server.models import User
from authz_server.oauth2 import query_client
from authz_server.sharing import SUBJECT_USER, Subject, create_policy, owned_resources
from tests.authz.conftest import csrf_token

pytestmark = pytest.mark.live

TIMEOUT = 5  # seconds; every call goes to a loopback server
# Seeded for `ehr`. Nothing listens there: the browser stops at the 302 and hands it to the RP.
EHR_LOGIN_REDIRECT = "http://localhost:8401/auth/callback"
EHR_CLIENT = ("ehr", "ehr-demo-secret")
# URIs the dynamically registered pyoidc client claims for itself; nothing listens there either.
RP_REDIRECT = "http://localhost:8403/rp/callback"
RP_CLAIMS_REDIRECT = "http://localhost:8403/rp/claims-callback"
KEYCLOAK_REALM = "uma-health"  # config KEYCLOAK_REALM: the /realms/<name>/... aliases

RECORD = {
    "name": "Blood pressure log",
    "type": "https://uma-health.example/rsrc/record-set/vitals",
    "resource_scopes": ["read", "write"],
    "icon_uri": "http://localhost:8401/static/icons/vitals.svg",
    # Keycloak's ResourceRepresentation member: an extension to UMA, which the AS ignores.
    "uris": ["/records/vitals"],
}


def sign_in_and_consent(authorization_url: str, username: str) -> str:
    """Be the browser: sign in at /login, allow on the consent page, return the redirect.

    The final 302 is not followed (nothing listens at the redirect URI): its Location goes
    back to the relying party under test.
    """
    with requests.Session() as browser:
        login_page = browser.get(authorization_url, timeout=TIMEOUT)
        assert login_page.status_code == 200
        assert urlsplit(login_page.url).path == "/login"
        consent_page = browser.post(
            login_page.url,  # /login?next=<the authorization request>
            data={
                "username": username,
                "password": username,  # demo accounts: password = username
                "csrf_token": csrf_token(login_page.text),
            },
            timeout=TIMEOUT,
        )
        assert consent_page.status_code == 200, consent_page.text
        assert urlsplit(consent_page.url).path == "/authorize"
        decision = browser.post(
            authorization_url,
            data={"csrf_token": csrf_token(consent_page.text), "allow": "1"},
            allow_redirects=False,
            timeout=TIMEOUT,
        )
    assert decision.status_code == 302, decision.text
    return decision.headers["Location"]


def query_of(url: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


# --- Authlib's OAuth 2.0 / OIDC client ---------------------------------------------------------


@pytest.fixture
def oidc_metadata(live_as):
    """The OpenID Provider metadata, fetched the way any RP would."""
    response = requests.get(live_as.url + "/.well-known/openid-configuration", timeout=TIMEOUT)
    assert response.status_code == 200
    metadata = response.json()
    assert metadata["issuer"] == live_as.url
    return metadata


@pytest.fixture
def ehr_rp():
    """Authlib's requests client as the EHR's sign-in: confidential, PKCE S256."""
    with OAuth2Session(
        *EHR_CLIENT,
        scope="openid profile email",
        redirect_uri=EHR_LOGIN_REDIRECT,
        code_challenge_method="S256",
    ) as session:
        yield session


def start_authlib_flow(session: OAuth2Session, metadata: dict, username: str = "alice"):
    """Authorization request through consent; returns (redirect Location, verifier, nonce)."""
    verifier = generate_token(48)
    nonce = generate_token(20)
    url, state = session.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    sent = query_of(url)
    assert sent["code_challenge_method"] == "S256" and sent["code_challenge"]
    assert sent["nonce"] == nonce and sent["state"] == state
    location = sign_in_and_consent(url, username)
    assert location.startswith(EHR_LOGIN_REDIRECT + "?")
    assert query_of(location)["state"] == state
    return location, verifier, nonce


def authlib_code_flow(session: OAuth2Session, metadata: dict, username: str = "alice"):
    """The whole code flow; returns (token response, nonce)."""
    location, verifier, nonce = start_authlib_flow(session, metadata, username)
    token = session.fetch_token(
        metadata["token_endpoint"], authorization_response=location, code_verifier=verifier
    )
    return token, nonce


def test_authlib_code_flow_pkce_id_token_verified_with_joserfc(live_as, oidc_metadata, ehr_rp):
    """OIDC code flow + PKCE S256 by Authlib; the ID token checked against the JWKS (DISC-2).

    RS256 signature by a key the JWKS publishes under the token's ``kid``; ``iss`` is the
    discovery issuer, ``aud`` the client, ``nonce`` the one sent, ``exp`` in the future, and
    ``at_hash`` (when present) matches the access token.
    """
    token, nonce = authlib_code_flow(ehr_rp, oidc_metadata)
    assert token["token_type"].lower() == "bearer"
    assert set(token["scope"].split()) == {"openid", "profile", "email"}

    jwks = requests.get(oidc_metadata["jwks_uri"], timeout=TIMEOUT).json()
    decoded = joserfc_jwt.decode(
        token["id_token"], KeySet.import_key_set(jwks), algorithms=["RS256"]
    )
    assert decoded.header["alg"] == "RS256"
    assert decoded.header["kid"] in {key["kid"] for key in jwks["keys"]}
    claims = CodeIDToken(
        decoded.claims,
        decoded.header,
        options={
            "iss": {"essential": True, "value": live_as.url},
            "aud": {"essential": True, "value": EHR_CLIENT[0]},
            "exp": {"essential": True},
        },
        params={
            "nonce": nonce,
            "client_id": EHR_CLIENT[0],
            "access_token": token["access_token"],
        },
    )
    claims.validate()
    assert claims["nonce"] == nonce
    assert claims["exp"] > time.time()


def test_authlib_id_token_verified_by_pyjwt(live_as, oidc_metadata, ehr_rp):
    """A second, unrelated verifier: PyJWT with its JWKS client picks the key by ``kid``."""
    token, nonce = authlib_code_flow(ehr_rp, oidc_metadata)
    id_token = token["id_token"]
    assert jwt.get_unverified_header(id_token)["kid"]
    signing_key = jwt.PyJWKClient(oidc_metadata["jwks_uri"]).get_signing_key_from_jwt(id_token)
    claims = jwt.decode(
        id_token,
        signing_key.key,
        algorithms=["RS256"],
        audience=EHR_CLIENT[0],
        issuer=live_as.url,
        options={"require": ["iss", "sub", "aud", "exp", "iat", "nonce"]},
    )
    assert claims["nonce"] == nonce
    # Another audience must be refused by the same check.
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(id_token, signing_key.key, algorithms=["RS256"], audience="doctor-app")


def test_authlib_pkce_wrong_verifier_is_refused(oidc_metadata, ehr_rp):
    """The code is bound to the S256 challenge: another verifier gets ``invalid_grant``."""
    location, _verifier, _nonce = start_authlib_flow(ehr_rp, oidc_metadata)
    with pytest.raises(OAuthError) as refused:
        ehr_rp.fetch_token(
            oidc_metadata["token_endpoint"],
            authorization_response=location,
            code_verifier=generate_token(48),
        )
    assert refused.value.error == "invalid_grant"


def test_authlib_userinfo_get_and_post(oidc_metadata, ehr_rp):
    """OIDC Core §5.3: the access token reads userinfo by GET and by POST, same claims."""
    token, _nonce = authlib_code_flow(ehr_rp, oidc_metadata)
    sub = jwt.decode(token["id_token"], options={"verify_signature": False})["sub"]
    endpoint = oidc_metadata["userinfo_endpoint"]
    by_get = ehr_rp.get(endpoint, timeout=TIMEOUT)
    by_post = ehr_rp.post(endpoint, timeout=TIMEOUT)
    for response in (by_get, by_post):
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("application/json")
    assert by_get.json() == by_post.json()
    info = by_get.json()
    assert info["sub"] == sub
    assert info["preferred_username"] == "alice"
    assert info["name"] == "Alice Patient"
    assert info["email"] == "alice@patients.example"
    assert info["email_verified"] is True
    # Without the token there is nothing to read (RFC 6750 §3).
    anonymous = requests.get(endpoint, timeout=TIMEOUT)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")


# --- pyoidc (the `oic` package) -----------------------------------------------------------------


@pytest.fixture
def oic_client(live_as):
    """A pyoidc client that has read the provider configuration (and so fetched the JWKS)."""
    client = OicClient(client_authn_method=CLIENT_AUTHN_METHOD)
    provider = client.provider_config(live_as.url)
    assert provider["issuer"] == live_as.url
    return client


def test_oic_dynamic_registration_and_code_flow(live_as, oic_client):
    """pyoidc registers itself (RFC 7591, DISC-2 ``registration_endpoint``), runs the code flow
    with PKCE S256 and verifies the ID token's signature against the JWKS on its own."""
    registration = oic_client.register(
        oic_client.provider_info["registration_endpoint"],
        redirect_uris=[RP_REDIRECT],
        client_name="pyoidc test RP",
        response_types=["code"],
        token_endpoint_auth_method="client_secret_basic",
    )
    assert registration["client_id"] == oic_client.client_id
    assert oic_client.client_secret
    assert registration["redirect_uris"] == [RP_REDIRECT]

    pkce, verifier = oic_client.add_code_challenge()
    assert pkce["code_challenge_method"] == "S256"
    state, nonce = generate_token(16), generate_token(16)
    request = oic_client.construct_AuthorizationRequest(
        request_args={
            "client_id": oic_client.client_id,
            "response_type": "code",
            "scope": ["openid", "profile"],
            "redirect_uri": RP_REDIRECT,
            "state": state,
            "nonce": nonce,
            **pkce,
        }
    )
    location = sign_in_and_consent(request.request(oic_client.authorization_endpoint), "carol")
    assert location.startswith(RP_REDIRECT + "?")
    authorization = oic_client.parse_response(
        AuthorizationResponse, info=urlsplit(location).query, sformat="urlencoded"
    )
    assert authorization["state"] == state

    tokens = oic_client.do_access_token_request(
        state=state,
        request_args={"code": authorization["code"], "code_verifier": verifier},
        authn_method="client_secret_basic",
    )
    # pyoidc has already checked the RS256 signature with the key it fetched from jwks_uri for
    # this kid, and iss/aud/nonce; a bad signature raises inside do_access_token_request.
    id_token = tokens["id_token"]
    assert id_token.jws_header["alg"] == "RS256"
    assert id_token.jws_header["kid"] in {
        key.kid for key in oic_client.keyjar.get_issuer_keys(live_as.url)
    }
    assert id_token["iss"] == live_as.url
    assert id_token["aud"] == [oic_client.client_id]
    assert id_token["nonce"] == nonce
    assert id_token["exp"] > time.time()
    # The verification is real: the same response with one signature character changed is
    # refused by pyoidc's own parser.
    header, payload, signature = tokens["id_token_jwt"].split(".")
    forged = f"{header}.{payload}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"
    with pytest.raises(BadSignature):
        oic_client.parse_response(
            AccessTokenResponse,
            info=json.dumps({**tokens.to_dict(), "id_token": forged}),
            sformat="json",
            state=state,
        )

    # OIDC Core §5.3.1 recommends GET with the Authorization header (RFC 6750 §2.1), the one
    # way every resource server must support. pyoidc's default, POST with the token in the
    # form body (RFC 6750 §2.2), is optional for servers and this AS does not offer it.
    userinfo = oic_client.do_user_info_request(method="GET", state=state)
    assert userinfo["sub"] == id_token["sub"]
    assert userinfo["preferred_username"] == "carol"


def test_oic_registration_accepts_claims_redirect_uris(oic_client):
    """DISC-6: an AS offering dynamic registration accepts ``claims_redirect_uris``.

    pyoidc's ``register()`` copies only the metadata it knows, so the UMA member is added to
    the request it builds, which is then sent and handled by pyoidc as ``register()`` would.
    """
    request = oic_client.create_registration_request(
        redirect_uris=[RP_REDIRECT], client_name="pyoidc UMA client", response_types=["code"]
    )
    request["claims_redirect_uris"] = [RP_CLAIMS_REDIRECT]
    response = oic_client.http_request(
        oic_client.provider_info["registration_endpoint"],
        "POST",
        data=request.to_json(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 201, response.text
    registration = oic_client.handle_registration_info(response)
    assert registration["client_id"] == oic_client.client_id
    # RFC 7591 §3.2.1: the response carries the registered metadata, UMA's included.
    assert registration["claims_redirect_uris"] == [RP_CLAIMS_REDIRECT]


# --- python-keycloak's UMA client ---------------------------------------------------------------


@pytest.fixture
def keycloak_uma(live_as):
    """python-keycloak, unmodified, pointed at the /realms/uma-health aliases as the EHR."""
    connection = KeycloakOpenIDConnection(
        server_url=live_as.url + "/",
        realm_name=KEYCLOAK_REALM,
        client_id=EHR_CLIENT[0],
        client_secret_key=EHR_CLIENT[1],
        timeout=TIMEOUT,
    )
    return KeycloakUMA(connection=connection)


def pat_of(uma: KeycloakUMA) -> str:
    """The PAT python-keycloak obtained (client credentials) after its first call."""
    return uma.connection.token["access_token"]


def test_keycloak_discovers_and_gets_a_pat(live_as, keycloak_uma):
    """DISC-1/DISC-4 through the realm alias; PAT-5: a client-credentials PAT.

    python-keycloak asks for ``scope=openid`` and only fetches a token after a 401 (PAT-2);
    the PAT it gets carries ``uma_protection``.
    """
    well_known = keycloak_uma.uma_well_known
    assert well_known["issuer"] == live_as.url
    assert well_known["resource_registration_endpoint"] == live_as.url + "/uma/resource_set"
    assert well_known["permission_endpoint"] == live_as.url + "/uma/permission"
    assert keycloak_uma.resource_set_list_ids() == []
    assert "uma_protection" in keycloak_uma.connection.token["scope"].split()


def test_keycloak_resource_create_read_list(keycloak_uma):
    """Checklist §3 Create (201 + ``_id``), Read (description + ``_id``), List (array of ids)."""
    created = keycloak_uma.resource_set_create(RECORD)
    resource_id = created["_id"]
    assert created["user_access_policy_uri"]

    read = keycloak_uma.resource_set_read(resource_id)
    assert read["_id"] == resource_id
    for member in ("name", "type", "resource_scopes", "icon_uri"):
        assert read[member] == RECORD[member]
    assert "uris" not in read  # the extension member was ignored, not stored

    other = keycloak_uma.resource_set_create({"name": "Allergies", "resource_scopes": ["read"]})
    assert keycloak_uma.resource_set_list_ids() == [resource_id, other["_id"]]
    assert keycloak_uma.resource_set_list_ids(name=RECORD["name"], exact_name=True) == [resource_id]
    listed = {r["_id"]: r for r in keycloak_uma.resource_set_list()}
    assert set(listed) == {resource_id, other["_id"]}
    assert listed[other["_id"]]["name"] == "Allergies"


def test_keycloak_permission_ticket(keycloak_uma):
    """PERM-2/PERM-3: permissions on two resources (one found by name, one by ``_id``) → one
    ticket; PERM-4: an unregistered scope → 400 ``invalid_scope``."""
    vitals = keycloak_uma.resource_set_create(RECORD)["_id"]
    allergies = keycloak_uma.resource_set_create(
        {"name": "Allergies", "resource_scopes": ["read"]}
    )["_id"]

    by_name = UMAPermission(resource=RECORD["name"], scope="read")  # looked up by exact name
    by_id = UMAPermission(resource="Allergies", scope="read")
    by_id.resource_id = allergies
    issued = keycloak_uma.permission_ticket_create([by_name, by_id])
    assert set(issued) == {"ticket"}
    assert isinstance(issued["ticket"], str) and issued["ticket"]

    bad_scope = UMAPermission(resource=RECORD["name"], scope="delete")
    bad_scope.resource_id = vitals
    with pytest.raises(KeycloakPostError) as refused:
        keycloak_uma.permission_ticket_create([bad_scope])
    assert refused.value.response_code == 400
    assert json.loads(refused.value.response_body)["error"] == "invalid_scope"


def test_keycloak_resource_delete(keycloak_uma):
    """Checklist §3 Delete → 204; RREG-5: afterwards Read → 404 (RREG-E1) and a permission
    request naming it → 400 ``invalid_resource_id`` (PERM-4)."""
    resource_id = keycloak_uma.resource_set_create(RECORD)["_id"]
    assert keycloak_uma.resource_set_delete(resource_id) == {}  # python-keycloak: 204 → {}

    with pytest.raises(KeycloakGetError) as missing:
        keycloak_uma.resource_set_read(resource_id)
    assert missing.value.response_code == 404
    assert resource_id not in keycloak_uma.resource_set_list_ids()

    gone = UMAPermission(resource=RECORD["name"], scope="read")
    gone.resource_id = resource_id
    with pytest.raises(KeycloakPostError) as refused:
        keycloak_uma.permission_ticket_create([gone])
    assert refused.value.response_code == 400
    assert json.loads(refused.value.response_body)["error"] == "invalid_resource_id"


REPLACEMENT = {"name": "Blood pressure log (2024)", "resource_scopes": ["read"]}


def test_resource_update_returns_200_with_id(keycloak_uma):
    """Checklist §3 Update: PUT is a complete replacement answered by 200 ``{"_id"}``.

    Sent with plain requests and python-keycloak's own PAT, then read back with
    python-keycloak: the update reaches the server even though python-keycloak's
    ``resource_set_update`` rejects the 200 (see the xfail test below).
    """
    resource_id = keycloak_uma.resource_set_create(RECORD)["_id"]
    endpoint = keycloak_uma.uma_well_known["resource_registration_endpoint"]
    response = requests.put(
        f"{endpoint}/{resource_id}",
        json=REPLACEMENT,
        headers={"Authorization": f"Bearer {pat_of(keycloak_uma)}"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["_id"] == resource_id

    read = keycloak_uma.resource_set_read(resource_id)
    assert read["name"] == REPLACEMENT["name"]
    assert read["resource_scopes"] == ["read"]
    # A complete replacement: members left out of the PUT are gone.
    assert "type" not in read and "icon_uri" not in read


@pytest.mark.xfail(
    strict=True,
    raises=KeycloakPutError,
    reason=(
        "python-keycloak expects 204 from resource update; UMA FedAuthz §3.2.3 (checklist RREG "
        "update) requires 200 with {_id}; we keep the spec"
    ),
)
def test_keycloak_resource_set_update(keycloak_uma):
    """python-keycloak's ``resource_set_update`` against the spec's 200 ``{"_id"}``."""
    resource_id = keycloak_uma.resource_set_create(RECORD)["_id"]
    keycloak_uma.resource_set_update(resource_id, REPLACEMENT)


# --- python-keycloak as the UMA client: the uma-ticket grant ------------------------------------

UMA_GRANT = "urn:ietf:params:oauth:grant-type:uma-ticket"
ID_TOKEN_FORMAT = "http://openid.net/specs/openid-connect-core-1_0.html#IDToken"
DOCTOR_CLIENT = ("doctor-app", "doctor-demo-secret")
DOCTOR_LOGIN_REDIRECT = "http://localhost:8402/auth/callback"


def test_keycloak_openid_obtains_an_rpt(live_as, oidc_metadata, keycloak_uma):
    """Checklist 6.1/6.3 with an unmodified python-keycloak ``KeycloakOpenID.token``: the RS
    (KeycloakUMA, client-credentials PAT) asks for a ticket; Carol's ID token is pushed as the
    claim token; her owner's standing policy grants ``read``."""
    resource_id = keycloak_uma.resource_set_create(RECORD)["_id"]
    permission = UMAPermission(resource=RECORD["name"], scope="read")
    permission.resource_id = resource_id
    ticket = keycloak_uma.permission_ticket_create([permission])["ticket"]

    # The owner here is the EHR's service account (it holds a client-credentials PAT and
    # cannot sign in to the console), so its policy for Carol is made with the domain call.
    with live_as.app.app_context():
        session = db.session()
        owner = service_account_for(query_client("ehr"))
        carol = session.query(User).filter_by(username="carol").one()
        create_policy(
            session,
            owner,
            Subject(SUBJECT_USER, user=carol),
            owned_resources(session, owner, [resource_id]),
            ["read"],
            None,
        )

    with OAuth2Session(
        *DOCTOR_CLIENT,
        scope="openid",
        redirect_uri=DOCTOR_LOGIN_REDIRECT,
        code_challenge_method="S256",
    ) as doctor_app:
        verifier = generate_token(48)
        url, _ = doctor_app.create_authorization_url(
            oidc_metadata["authorization_endpoint"],
            code_verifier=verifier,
            nonce=generate_token(16),
        )
        id_token = doctor_app.fetch_token(
            oidc_metadata["token_endpoint"],
            code_verifier=verifier,
            authorization_response=sign_in_and_consent(url, "carol"),
        )["id_token"]

    keycloak_client = KeycloakOpenID(
        server_url=live_as.url + "/",
        realm_name=KEYCLOAK_REALM,
        client_id=DOCTOR_CLIENT[0],
        client_secret_key=DOCTOR_CLIENT[1],
        timeout=TIMEOUT,
    )
    rpt = keycloak_client.token(
        grant_type=UMA_GRANT,
        ticket=ticket,
        scope="",
        claim_token=id_token,
        claim_token_format=ID_TOKEN_FORMAT,
    )
    assert rpt["token_type"] == "Bearer" and rpt["access_token"] and rpt["pct"]

    introspection = requests.post(
        live_as.url + "/introspect",
        data={"token": rpt["access_token"]},
        headers={"Authorization": f"Bearer {pat_of(keycloak_uma)}"},
        timeout=TIMEOUT,
    ).json()
    assert introspection["active"] is True
    assert [(p["resource_id"], p["resource_scopes"]) for p in introspection["permissions"]] == [
        (resource_id, ["read"])
    ]
