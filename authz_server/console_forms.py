"""The console's forms (Flask-WTF, so every one carries the session's CSRF token)."""

from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from .console_data import DURATIONS


def choices(pairs) -> list[SelectChoice]:
    """(value, label) pairs as WTForms 3.3 wants them (plain tuples are deprecated)."""
    return [SelectChoice(value, label) for value, label in pairs]


SCOPE_CHOICES = [("read", "read"), ("write", "write")]


def chosen(message: str):
    """At least one box ticked. A plain function, not DataRequired: that would put
    `required` on every checkbox and the browser would insist on all of them."""

    def check(_form, field):
        if not field.data:
            raise ValidationError(message)

    return check


class CheckboxesField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def _durations():
    return choices((key, label) for key, (label, _length) in DURATIONS.items())


class DurationMixin:
    duration = SelectField("For how long", choices=_durations(), default="30d")
    until = DateField("Until", validators=[Optional()])


class ShareForm(DurationMixin, FlaskForm):
    resources = CheckboxesField("What", validators=[chosen("Choose what to share.")])
    subject_type = RadioField(
        "With",
        choices=choices(
            [
                ("user", "a person (username or email)"),
                ("group", "a group"),
                ("email_domain", "anyone whose verified email is at a domain"),
            ]
        ),
        default="user",
    )
    subject = StringField(
        "Who", validators=[DataRequired("Say who to share with."), Length(max=255)]
    )
    scopes = CheckboxesField(
        "May",
        choices=choices(SCOPE_CHOICES),
        default=["read"],
        validators=[chosen("Choose read, write or both.")],
    )
    submit = SubmitField("Share")


class AnswerForm(DurationMixin, FlaskForm):
    """Share or Deny on a pending request; Share may narrow the scopes and set a duration."""

    scopes = CheckboxesField("May", choices=choices(SCOPE_CHOICES))
    share = SubmitField("Share")
    deny = SubmitField("Deny")


class PolicyForm(DurationMixin, FlaskForm):
    scopes = CheckboxesField("May", choices=choices(SCOPE_CHOICES))
    save = SubmitField("Save")
    revoke = SubmitField("Revoke")


class SettingForm(FlaskForm):
    uncovered = RadioField(
        "When someone you have not shared with asks",
        choices=choices([("ask", "ask me"), ("deny", "deny at once")]),
    )
    submit = SubmitField("Save")


class ButtonForm(FlaskForm):
    submit = SubmitField()
