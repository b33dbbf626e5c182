"""Entry point for gunicorn: ``gunicorn doctor_client.wsgi:app``."""

from app_support.migrations import wsgi_app

from . import create_app

app = wsgi_app(create_app, "uma-health-doctor")
