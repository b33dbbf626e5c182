"""Errors as pages a person can act on; never a traceback."""

from flask import render_template, request
from werkzeug.exceptions import HTTPException


def init_app(app) -> None:
    @app.errorhandler(HTTPException)
    def _http(error: HTTPException):
        return render_template(
            "message.html", title=error.name, message=error.description, kind="error"
        ), error.code

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return render_template(
            "message.html",
            title="Something went wrong",
            message="The doctor app hit an unexpected error. Please try again.",
            kind="error",
        ), 500
