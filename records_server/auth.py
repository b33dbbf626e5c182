"""Who is signed in to the EHR (flask-login), and the small forms of its pages (all CSRF)."""

from flask_login import LoginManager
from flask_wtf import FlaskForm
from wtforms import SelectField, SubmitField

from . import db
from .models import Patient

login_manager = LoginManager()
login_manager.login_view = "pages.index"


@login_manager.user_loader
def load_patient(patient_id: str) -> Patient | None:
    return db.session().get(Patient, int(patient_id)) if patient_id.isdigit() else None


class ButtonForm(FlaskForm):
    """A form that is only a button: sign out, protect, unlink."""

    submit = SubmitField()


class NewRecordSetForm(FlaskForm):
    kind = SelectField("Kind of record", choices=[])
    submit = SubmitField("Add record set")


def init_app(app) -> None:
    login_manager.init_app(app)

    @app.context_processor
    def _forms():
        return {"logout_form": ButtonForm()}
