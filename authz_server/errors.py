"""Typed protocol errors: the protection API's JSON errors (UMA FedAuthz §6) and the UMA
grant's errors at the token endpoint (UMA Grant §3.3.6)."""

from authlib.oauth2 import OAuth2Error


class ProtectionError(Exception):
    """An error of the protection API, rendered as ``{"error", "error_description"}``."""

    status_code = 400
    error = "invalid_request"

    def __init__(self, description: str, *, status_code: int | None = None):
        super().__init__(description)
        self.description = description
        if status_code is not None:
            self.status_code = status_code

    def body(self) -> dict:
        return {"error": self.error, "error_description": self.description}


class InvalidRequest(ProtectionError):
    """Missing or invalid parameter, repeated parameter, malformed JSON (FedAuthz §3.2)."""


class NotFound(ProtectionError):
    status_code = 404
    error = "not_found"


class UnsupportedMethod(ProtectionError):
    status_code = 405
    error = "unsupported_method_type"


class InvalidResourceId(ProtectionError):
    """A permission request names a resource this RS did not register for this owner (§4.2)."""

    error = "invalid_resource_id"


class InvalidScope(ProtectionError):
    """A permission request names a scope not registered for that resource (§4.2)."""

    error = "invalid_scope"


# --- UMA grant errors (UMA Grant §3.3.6, checklist 6.4) ----------------------------------


class UmaGrantError(OAuth2Error):
    """An UMA error at the token endpoint: 403, RFC 6749 §5.2 JSON, plus UMA members."""

    status_code = 403

    def extra_members(self) -> dict:
        return {}

    def get_body(self):
        return [*super().get_body(), *self.extra_members().items()]


class NeedInfo(UmaGrantError):
    """More claims are needed: a NEW ticket plus where to gather them."""

    error = "need_info"

    def __init__(self, ticket: str, redirect_user: str, required_claims: list[dict], **kw):
        super().__init__(**kw)
        self.ticket = ticket
        self.redirect_user = redirect_user
        self.required_claims = required_claims

    def extra_members(self) -> dict:
        return {
            "ticket": self.ticket,
            "required_claims": self.required_claims,
            "redirect_user": self.redirect_user,
        }


class RequestSubmitted(UmaGrantError):
    """The owner has been asked; poll again with the NEW ticket after ``interval`` seconds."""

    error = "request_submitted"

    def __init__(self, ticket: str, interval: int, **kw):
        super().__init__(**kw)
        self.ticket = ticket
        self.interval = interval

    def extra_members(self) -> dict:
        return {"ticket": self.ticket, "interval": self.interval}


class RequestDenied(UmaGrantError):
    error = "request_denied"
