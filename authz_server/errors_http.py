"""HTTP errors: JSON for API clients, a plain page for people. Never a traceback."""

import logging

from flask import jsonify, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError

from .discovery import PATHS

log = logging.getLogger(__name__)

# Paths whose callers are programs: they get RFC 6749 §5.2-shaped JSON.
API_PREFIXES = (
    *(
        PATHS[name]
        for name in (
            "token_endpoint",
            "revocation_endpoint",
            "introspection_endpoint",
            "userinfo_endpoint",
            "registration_endpoint",
            "jwks_uri",
        )
    ),
    "/uma/",  # the protection API
    "/.well-known/",
    "/realms/",  # Keycloak-shaped aliases
    "/api/",  # the owner's JSON API
)
ERROR_CODES = {404: "not_found", 405: "unsupported_method_type", 413: "invalid_request"}


def wants_json() -> bool:
    return request.path.startswith(API_PREFIXES) or (
        request.accept_mimetypes.best == "application/json"
    )


def respond(status: int, title: str, message: str):
    if wants_json():
        response = jsonify(
            error=ERROR_CODES.get(status, "invalid_request" if status < 500 else "server_error"),
            error_description=message,
        )
        response.status_code = status
        response.headers["Cache-Control"] = "no-store"
        return response
    return render_template("error.html", title=title, message=message, code=status), status


def init_app(app) -> None:
    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        response = respond(error.code or 500, error.name, error.description or error.name)
        if error.code == 405 and hasattr(error, "valid_methods") and error.valid_methods:
            if isinstance(response, tuple):
                return response[0], response[1], {"Allow": ", ".join(error.valid_methods)}
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        if isinstance(error, HTTPException):
            return _http_error(error)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return respond(500, InternalServerError.name, "Something went wrong on our side.")
