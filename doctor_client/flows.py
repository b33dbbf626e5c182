"""Which flow a doctor's request belongs to. Opening a record or writing a note starts one;
the steps that finish it later (back from signing in at the AS, the poll that finally
succeeds) find it again through links the trace keeps, so the whole story is one flow."""

import requests
from flask import current_app, session
from flask_login import current_user
from sqlalchemy import delete, select

from app_support.database import utcnow
from app_support.trace import new_flow_id, tracer, valid_flow_id

from . import db
from .access import SignInRedirect, WaitingPage
from .flow_story import steps
from .models import Flow

CONTINUE = "continue_flow"  # in the signed session cookie: the next page ends this flow


def begin(title: str) -> str:
    """This request starts a flow, or finishes the one a finished wait sent it to."""
    flow_id = session.pop(CONTINUE, None)
    if not valid_flow_id(flow_id) or _owned(flow_id) is None:
        flow_id = new_flow_id()
        store = db.session()
        # Older flows have lost their messages to the trace's pruning: nothing left to tell.
        store.execute(
            delete(Flow).where(
                Flow.person_id == current_user.id, Flow.started_at < utcnow() - tracer().keep
            )
        )
        store.add(Flow(id=flow_id, person_id=current_user.id, title=title[:300]))
        store.commit()
    tracer().use_flow(flow_id, record_request_from="party")
    return flow_id


def resume(key: str, record_request: bool = True) -> None:
    """Join the flow ``key`` (a claims ``state``, a waiting request) was linked to."""
    flow_id = tracer().flow_of(key)
    if flow_id and _owned(flow_id) is not None:
        tracer().use_flow(flow_id, record_request_from="party" if record_request else None)


def remember(result) -> None:
    """Link what will come back later to this flow."""
    if isinstance(result, SignInRedirect):
        tracer().link(claims_key(result.state))
    elif isinstance(result, WaitingPage):
        tracer().link(waiting_key(result.pending.id))
        if result.pending.status == "done" and tracer().current_flow():
            session[CONTINUE] = tracer().current_flow()


def claims_key(state: str) -> str:
    return "claims:" + state


def waiting_key(pending_id: int) -> str:
    return f"waiting:{pending_id}"


def _owned(flow_id: str) -> Flow | None:
    flow = db.session().get(Flow, flow_id)
    return flow if flow is not None and flow.person_id == current_user.id else None


def recent(limit: int = 15) -> list[Flow]:
    return list(
        db.session().scalars(
            select(Flow)
            .where(Flow.person_id == current_user.id)
            .order_by(Flow.started_at.desc())
            .limit(limit)
        )
    )


def latest() -> Flow | None:
    return next(iter(recent(limit=1)), None)


def told(flow_id: str) -> tuple[Flow | None, list, list[str]]:
    """The flow, its steps from all three apps, and which apps could not be asked."""
    flow = _owned(flow_id) if valid_flow_id(flow_id) else None
    if flow is None:
        return None, [], []
    messages = tracer().messages(flow_id)
    missing = []
    config = current_app.config
    for name, base in (("EHR", config["EHR_URL"]), ("authorization server", config["AS_ISSUER"])):
        try:
            answer = requests.get(f"{base}/_trace/flows/{flow_id}", timeout=config["HTTP_TIMEOUT"])
            answer.raise_for_status()
            messages.extend(answer.json()["messages"])
        except (requests.RequestException, ValueError, KeyError, TypeError):
            missing.append(name)
    party = current_user.username.capitalize() or "The requesting party"
    return flow, steps(messages, party), missing
