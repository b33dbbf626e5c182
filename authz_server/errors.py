"""Typed protocol errors: the protection API's JSON errors (UMA FedAuthz §6)."""


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
