"""The doctor app's pages."""


def init_app(app) -> None:
    from . import pages

    app.register_blueprint(pages.bp)
