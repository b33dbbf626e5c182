"""Who is signed in (flask-login) and the forms of the doctor app's pages (all CSRF)."""

from flask_login import LoginManager
from flask_wtf import FlaskForm
from wtforms import StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length

from . import db
from .models import Person

login_manager = LoginManager()
login_manager.login_view = "pages.index"


@login_manager.user_loader
def load_person(person_id: str) -> Person | None:
    return db.session().get(Person, int(person_id)) if person_id.isdigit() else None


class ButtonForm(FlaskForm):
    submit = SubmitField()


class NoteForm(FlaskForm):
    """A clinical note, stored at the EHR as a FHIR DocumentReference."""

    title = StringField("Title", validators=[DataRequired(), Length(max=200)])
    text = TextAreaField("Note", validators=[DataRequired(), Length(max=4000)])
    submit = SubmitField("Add to the record")


def init_app(app) -> None:
    login_manager.init_app(app)

    @app.context_processor
    def _forms():
        return {"logout_form": ButtonForm()}
