"""The look the three apps share: one page frame (``ui/layout.html``) and one stylesheet
(``common.css``), served by a blueprint each app registers; each app adds its own few rules."""

from flask import Blueprint

bp = Blueprint(
    "ui",
    __name__,
    static_folder="static",
    static_url_path="/_ui/static",
    template_folder="templates",
)


def init_app(app) -> None:
    app.register_blueprint(bp)
