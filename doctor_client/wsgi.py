"""Entry point for gunicorn: ``gunicorn doctor_client.wsgi:app``."""

from . import create_app

app = create_app()
