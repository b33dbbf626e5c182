"""Entry point for gunicorn: ``gunicorn authz_server.wsgi:app``."""

from . import create_app

app = create_app()
