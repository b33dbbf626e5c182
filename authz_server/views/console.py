"""The owner's console. This issue gives it the resource pages the protection API links to;
the console issue adds sharing, pending requests and history."""

from flask import Blueprint, abort, render_template
from flask_login import current_user, login_required
from sqlalchemy import select

from .. import db
from ..models import Resource

bp = Blueprint("console", __name__, url_prefix="/console")


@bp.route("/")
@login_required
def index():
    resources = db.session().scalars(
        select(Resource)
        .where(Resource.owner_id == current_user.id)
        .order_by(Resource.client_pk, Resource.name)
    )
    return render_template("console/resources.html", resources=list(resources))


@bp.route("/resources/<resource_id>")
@login_required
def resource(resource_id: str):
    """The ``user_access_policy_uri`` of a resource (FedAuthz §3.2)."""
    found = db.session().get(Resource, resource_id)
    # Someone else's resource looks exactly like a missing one.
    if found is None or found.owner_id != current_user.id:
        abort(404)
    return render_template("console/resource.html", resource=found)
