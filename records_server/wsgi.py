"""Entry point for gunicorn: ``gunicorn records_server.wsgi:app``."""

from . import create_app

app = create_app()
