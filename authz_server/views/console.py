"""The owner's console: my resources, Share, pending requests, who has access, history,
connected apps. Views parse a form, call ``sharing`` / ``console_data``, and render; domain
errors are shown in place as messages. An owner only ever sees her own rows: every query
below is by ``current_user``, and someone else's id looks exactly like a missing one."""

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from .. import audit, db
from ..console_data import (
    access_now,
    connected_apps,
    disconnect,
    expiry_for,
    pending_count,
    subject_label,
    update_policy,
)
from ..console_forms import AnswerForm, ButtonForm, PolicyForm, SettingForm, ShareForm, choices
from ..errors import ProtectionError
from ..models import Client, Resource
from ..sharing import (
    approve_request,
    create_policy,
    deny_request,
    list_policies,
    list_requests,
    owned_resources,
    parse_subject,
    revoke_policy,
    set_uncovered,
)

bp = Blueprint("console", __name__, url_prefix="/console")
PER_PAGE = 25


@bp.app_context_processor
def _badge():
    """The pending-requests count in the navigation, on every page of a signed-in owner."""
    if current_user.is_authenticated and request.blueprint == "console":
        return {"pending_count": pending_count(db.session(), current_user)}
    return {}


def _my_resources() -> list[Resource]:
    return list(
        db.session().scalars(
            select(Resource)
            .where(Resource.owner_id == current_user.id)
            .order_by(Resource.client_pk, Resource.name)
        )
    )


@bp.route("/")
@login_required
def index():
    resources = _my_resources()
    groups: dict[str, list[Resource]] = {}
    for resource in resources:
        groups.setdefault(resource.client.display_name, []).append(resource)
    return render_template(
        "console/resources.html",
        groups=groups,
        access=access_now(db.session(), current_user),
        button=ButtonForm(),
    )


@bp.route("/resources/<resource_id>", methods=["GET", "POST"])
@login_required
def resource(resource_id: str):
    """The ``user_access_policy_uri`` of a resource (FedAuthz §3.2)."""
    found = db.session().get(Resource, resource_id)
    if found is None or found.owner_id != current_user.id:
        abort(404)
    form = SettingForm(uncovered=found.uncovered)
    if form.validate_on_submit():
        set_uncovered(db.session(), current_user, found.id, form.uncovered.data)
        flash("Saved.", "info")
        return redirect(url_for("console.resource", resource_id=found.id))
    return render_template(
        "console/resource.html",
        resource=found,
        access=access_now(db.session(), current_user).get(found.id, []),
        form=form,
    )


@bp.route("/share", methods=["GET", "POST"])
@login_required
def share():
    """The Share dialog, for one resource or several (``?r=<id>&r=<id>``)."""
    session = db.session()
    resources = _my_resources()
    form = ShareForm()
    form.resources.choices = choices([(r.id, r.name or r.id) for r in resources])
    offered = sorted({s for r in resources for s in r.scopes})
    form.scopes.choices = choices([(s, s) for s in offered])
    if request.method == "GET":
        mine = {r.id for r in resources}
        form.resources.data = [r for r in request.args.getlist("r") if r in mine]
    if form.validate_on_submit():
        try:
            chosen = owned_resources(session, current_user, form.resources.data)
            subject = parse_subject(session, _subject(form))
            expires = expiry_for(form.duration.data, form.until.data)
            create_policy(session, current_user, subject, chosen, form.scopes.data, expires)
        except ProtectionError as error:
            session.rollback()
            flash(error.description, "error")
        else:
            flash(f"Shared {len(chosen)} resource(s). It takes effect at once.", "info")
            return redirect(url_for("console.index"))
    elif request.method == "POST":
        _flash_form_errors(form)
    return render_template(
        "console/share.html", form=form
    ), 400 if request.method == "POST" else 200


def _subject(form: ShareForm) -> dict:
    value = form.subject.data.strip()
    if form.subject_type.data == "group":
        return {"type": "group", "name": value}
    if form.subject_type.data == "email_domain":
        return {"type": "email_domain", "domain": value}
    return {"type": "user", "email" if "@" in value else "username": value}


@bp.route("/requests")
@login_required
def requests_page():
    found = list_requests(db.session(), current_user)
    forms = {}
    for pending in found:
        form = AnswerForm(prefix=f"r{pending.id}", scopes=pending.scopes)
        form.scopes.choices = choices([(s, s) for s in pending.resource.scopes])
        forms[pending.id] = form
    return render_template("console/requests.html", requests=found, forms=forms)


@bp.post("/requests/<int(max=2147483647):request_id>")
@login_required
def answer(request_id: int):
    session = db.session()
    form = AnswerForm(prefix=f"r{request_id}")
    form.scopes.choices = choices([(s, s) for r in _my_resources() for s in r.scopes])
    if not form.validate_on_submit():
        _flash_form_errors(form)
        return redirect(url_for("console.requests_page"))
    try:
        if form.deny.data:
            found = deny_request(session, current_user, request_id)
            flash(f"Denied {found.requester.username}.", "info")
        else:
            expires = expiry_for(form.duration.data, form.until.data)
            policy = approve_request(session, current_user, request_id, form.scopes.data, expires)
            flash(f"Shared with {policy.subject_user.username}.", "info")
    except ProtectionError as error:
        session.rollback()
        flash(error.description, "error")
    return redirect(url_for("console.requests_page"))


@bp.route("/policies")
@login_required
def policies():
    found = list_policies(db.session(), current_user)
    forms = {}
    for policy in found:
        form = PolicyForm(prefix=f"p{policy.id}", scopes=policy.scopes)
        form.scopes.choices = choices(sorted({(s, s) for r in policy.resources for s in r.scopes}))
        forms[policy.id] = form
    labels = {p.id: subject_label(p) for p in found}
    return render_template("console/policies.html", policies=found, forms=forms, labels=labels)


@bp.post("/policies/<int(max=2147483647):policy_id>")
@login_required
def change_policy(policy_id: int):
    session = db.session()
    form = PolicyForm(prefix=f"p{policy_id}")
    form.scopes.choices = choices([(s, s) for r in _my_resources() for s in r.scopes])
    if not form.validate_on_submit():
        _flash_form_errors(form)
        return redirect(url_for("console.policies"))
    try:
        if form.revoke.data:
            revoke_policy(session, current_user, policy_id)
            flash("Revoked. Tokens that relied on it stop working at the next check.", "info")
        else:
            expires = expiry_for(form.duration.data, form.until.data)
            update_policy(session, current_user, policy_id, form.scopes.data, expires)
            flash("Saved.", "info")
    except ProtectionError as error:
        session.rollback()
        flash(error.description, "error")
    return redirect(url_for("console.policies"))


@bp.route("/history")
@login_required
def history():
    args = request.args
    outcome = args.get("outcome") or None
    requester = (args.get("requester") or "").strip() or None
    resource_id = args.get("resource") or None
    page = max(1, min(args.get("page", 1, type=int) or 1, 10_000))
    events, total = audit.query(
        db.session(),
        current_user.id,
        outcome=outcome,
        requester=requester,
        resource_id=resource_id,
        page=page,
        per_page=PER_PAGE,
    )
    pages = max(1, -(-total // PER_PAGE))
    filters = {
        k: v
        for k, v in (("outcome", outcome), ("requester", requester), ("resource", resource_id))
        if v
    }
    return render_template(
        "console/history.html",
        outcomes=audit.OUTCOMES,
        events=events,
        total=total,
        page=page,
        pages=pages,
        filters=filters,
        resources=_my_resources(),
    )


@bp.route("/apps")
@login_required
def apps():
    return render_template(
        "console/apps.html", apps=connected_apps(db.session(), current_user), button=ButtonForm()
    )


@bp.post("/apps/<client_id>/disconnect")
@login_required
def disconnect_app(client_id: str):
    if not ButtonForm().validate_on_submit():
        flash("That form had expired; please try again.", "error")
        return redirect(url_for("console.apps"))
    client = db.session().scalar(select(Client).where(Client.client_id == client_id))
    if client is None or disconnect(db.session(), current_user, client_id) == 0:
        flash("That app holds no access of yours.", "error")
    else:
        flash(
            f"Disconnected {client.display_name}: it can no longer register or check access "
            "for your resources until you link it again.",
            "info",
        )
    return redirect(url_for("console.apps"))


def _flash_form_errors(form) -> None:
    messages = [m for errors in form.errors.values() for m in errors]
    if "csrf_token" in form.errors:
        messages = ["That form had expired; please try again."]
    for message in messages or ["Please check the form."]:
        flash(str(message), "error")
