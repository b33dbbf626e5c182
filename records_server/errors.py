"""Errors as the caller can use them: JSON under /api and for machines, a page for people.
Never a traceback."""

from flask import jsonify, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError

from .protector import Refused

# Werkzeug's names for statuses, in the spirit of OAuth's error codes.
ERROR_CODES = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    500: "server_error",
}


def wants_json() -> bool:
    return request.path.startswith("/api/")


def respond(status: int, title: str, description: str):
    if wants_json():
        response = jsonify(error=ERROR_CODES.get(status, "error"), error_description=description)
        response.status_code = status
        response.headers["Cache-Control"] = "no-store"
        return response
    return render_template("error.html", title=title, message=description), status


def init_app(app) -> None:
    @app.errorhandler(Refused)
    def _refused(error: Refused):
        return error.response

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException):
        response = respond(error.code or 500, error.name, error.description or error.name)
        if error.code == 405 and wants_json():
            response.headers["Allow"] = ", ".join(error.valid_methods or [])
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return respond(500, "Something went wrong", InternalServerError.description)
