"""Pushed claim tokens (UMA Grant §3.3.1): OIDC ID tokens issued by this AS.

A claim token is trusted only if it is an RS256 JWT signed by a key in our JWKS, issued by us,
unexpired, and issued to the requesting client (checklist SEC-PUSH-TRUST: the audience
restriction is not ignored). Anything else is refused, which the grant answers with
``need_info``.
"""

import time

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

ID_TOKEN_FORMAT = "http://openid.net/specs/openid-connect-core-1_0.html#IDToken"
ALLOWED_ALGORITHMS = ["RS256"]  # never "none", never HMAC with a public key
LEEWAY_SECONDS = 30


class ClaimTokenRejected(Exception):
    """The pushed claim token cannot be used; the message says why."""


def verify_id_token(
    token: str, keys: KeySet, issuer: str, client_id: str, now: float | None = None
) -> dict:
    """Check signature, ``iss``, ``exp`` and ``aud``; return the claims."""
    now = time.time() if now is None else now
    try:
        decoded = jwt.decode(token, keys, algorithms=ALLOWED_ALGORITHMS)
    except (JoseError, ValueError, TypeError) as error:
        raise ClaimTokenRejected(f"bad signature or format ({type(error).__name__})") from None
    claims = decoded.claims
    if claims.get("iss") != issuer:
        raise ClaimTokenRejected("not issued by this authorization server")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp + LEEWAY_SECONDS < now:
        raise ClaimTokenRejected("expired")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if client_id not in audiences:
        raise ClaimTokenRejected("issued to another client")
    if not isinstance(claims.get("sub"), str):
        raise ClaimTokenRejected("no subject")
    return claims
