"""Sign-in sessions (flask-login) and the forms people submit, all CSRF-protected."""

from urllib.parse import urlsplit

from flask_login import LoginManager
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Length

from . import db
from .models import User

login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Please sign in to continue."


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    if not user_id.isdigit():
        return None
    user = db.session().get(User, int(user_id))
    return user if user is not None and user.is_active else None


def authenticate(username: str, password: str) -> User | None:
    """The person with these credentials, or None; service accounts never sign in."""
    user = db.session().scalar(select(User).where(User.username == username.strip()))
    if user is None or user.is_service_account or not user.check_password(password):
        return None
    return user


def safe_next(target: str | None, default: str) -> str:
    """Only same-site relative paths: ``next`` must not become an open redirect."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    return target


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=80)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])
    submit = SubmitField("Sign in")


class ConsentForm(FlaskForm):
    allow = SubmitField("Allow")
    deny = SubmitField("Deny")


class LogoutForm(FlaskForm):
    submit = SubmitField("Sign out")


def init_app(app) -> None:
    login_manager.init_app(app)

    @app.context_processor
    def _forms():
        return {"logout_form": LogoutForm()}
