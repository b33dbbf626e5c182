"""TLS for the protocol (checklist PAT-1, INT-5, SEC-TLS): plain http only on loopback.

The demo runs on http://localhost, which Authlib's own rule allows. Any other host must be
reached over https (directly, or behind a proxy that sets X-Forwarded-Proto and is trusted
with AS_TRUSTED_PROXIES), unless AUTHLIB_INSECURE_TRANSPORT is set (docker-compose needs
neither: its containers share the host network and use localhost). Without this guard,
Authlib raises InsecureTransportError mid-request.
"""

from authlib.common.security import is_secure_transport
from flask import request
from werkzeug.middleware.proxy_fix import ProxyFix


def init_app(app) -> None:
    proxies = int(app.config.get("TRUSTED_PROXIES") or 0)
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)

    @app.before_request
    def _require_tls():
        if is_secure_transport(request.url):
            return None
        from .errors_http import respond

        return respond(
            400,
            "HTTPS required",
            "This server only speaks OAuth over https (or plain http on localhost).",
        )
