"""One flow's protocol messages, from the doctor app, the EHR and the AS, told as a numbered
sequence of arrows with what each one means and which part of the UMA checklist it
implements (the "How did I get this?" page and ``uma-health scenario``).

Plain functions over the message dicts of ``app_support.trace``; no Flask.
"""

from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit

LANES = ("party", "client", "ehr", "as", "alice")
LANE_NAMES = {
    "party": "Requesting party",
    "client": "Client (doctor app)",
    "ehr": "EHR (resource server)",
    "as": "Authorization server",
    "alice": "Alice (owner)",
}
PARTY = "{party}"  # in an explanation: the requesting party's name, filled in per flow
BROWSERS = frozenset({"party", "alice"})  # they record nothing; the app they reach does


@dataclass
class Step:
    number: int
    source: str
    target: str
    message: str
    details: dict
    explanation: str
    spec: str
    repeated: int = 1
    note: str | None = None

    def as_dict(self) -> dict:
        return {
            "n": self.number,
            "from": self.source,
            "to": self.target,
            "message": self.message,
            "details": self.details,
            "explanation": self.explanation,
            "spec": self.spec,
            "repeated": self.repeated,
            "note": self.note,
        }

    def line(self) -> str:
        """One terminal line per step, as ``uma-health scenario`` prints it."""
        times = f" (×{self.repeated})" if self.repeated > 1 else ""
        arrow = f"{LANE_NAMES[self.source]} → {LANE_NAMES[self.target]}"
        first = f"{self.number:>2}. {arrow}: {self.message}{times}"
        return f"{first}\n    {self.explanation} [{self.spec}]"


@dataclass
class _Exchange:
    """A request and its answer: two arrows in the diagram."""

    source: str
    target: str
    message: dict
    note: str | None = None
    polling: bool = False  # a token request after request_submitted


def steps(messages: list[dict], party: str = "The requesting party") -> list[Step]:
    """Arrows in time order: each exchange's request, the exchanges it caused, its answer.
    ``party`` names the requesting party in the explanations."""
    exchanges = _exchanges([m for m in messages if _well_formed(m)])
    events = []
    for exchange in exchanges:
        events.append((exchange.message["started"], 0, exchange, "request"))
        events.append((exchange.message["finished"], 1, exchange, "response"))
    events.sort(key=lambda event: (event[0], event[1]))
    told: list[Step] = []
    for _at, _order, exchange, part in events:
        step = _tell(exchange, part)
        step.explanation = step.explanation.replace(PARTY, party)
        told.append(step)
        if _repeats(told):
            told[-4].repeated += 1
            told[-3].repeated += 1
            del told[-2:]
    for number, step in enumerate(told, 1):
        step.number = number
    return told


def _exchanges(messages: list[dict]) -> list[_Exchange]:
    """Each message once: the sender's record of a server-to-server call (with the
    receiver's note), and the app's record of what a browser asked it."""
    received = [m for m in messages if m["direction"] == "received"]
    kept = []
    submitted = False
    for message in sorted(messages, key=lambda m: m["started"]):
        if message["direction"] == "sent":
            exchange = _Exchange(message["recorder"], message["peer"], message)
            match = _receiver_record(message, received)
            exchange.note = match["note"] if match else None
            if message["request"].get("grant_type", "").endswith("uma-ticket"):
                exchange.polling = submitted
                submitted = message["response"].get("error") == "request_submitted"
            kept.append(exchange)
        elif message["peer"] in BROWSERS:
            kept.append(_Exchange(message["peer"], message["recorder"], message, message["note"]))
    return kept


def _receiver_record(sent: dict, received: list[dict]) -> dict | None:
    """The receiver's own record of ``sent``: it began while the sender waited (the apps
    share a clock; a little slack for rounding). Each record matches once."""
    path = urlsplit(sent["url"]).path
    for candidate in received:
        if (
            candidate["recorder"] == sent["peer"]
            and candidate["peer"] == sent["recorder"]
            and candidate["method"] == sent["method"]
            and urlsplit(candidate["url"]).path == path
            and sent["started"] - 0.05 <= candidate["started"] <= sent["finished"] + 0.05
        ):
            received.remove(candidate)
            return candidate
    return None


_FIELDS = {"direction": str, "recorder": str, "peer": str, "method": str, "url": str}


def _well_formed(message) -> bool:
    """Messages come from three apps over HTTP; a malformed one is left out, not a crash."""
    return (
        isinstance(message, dict)
        and all(isinstance(message.get(k), t) for k, t in _FIELDS.items())
        and isinstance(message.get("started"), (int, float))
        and isinstance(message.get("finished"), (int, float))
        and isinstance(message.get("request"), dict)
        and isinstance(message.get("response"), dict)
        and message["peer"] in LANES
        and message["recorder"] in LANES
        and (message.get("status") is None or isinstance(message["status"], int))
    )


def _repeats(told: list[Step]) -> bool:
    """A poll that got the same answer as the poll before: counted, not drawn again."""
    if len(told) < 4:
        return False
    earlier, answer, again, same = told[-4:]
    return (
        again.explanation.startswith("Polling")
        and (earlier.source, earlier.target, earlier.message, earlier.explanation)
        == (again.source, again.target, again.message, again.explanation)
        and (answer.source, answer.target, answer.message)
        == (same.source, same.target, same.message)
    )


def _tell(exchange: _Exchange, part: str) -> Step:
    message = exchange.message
    path = urlsplit(message["url"]).path
    if part == "request":
        explanation, spec = _explain_request(exchange, path)
        text = f"{message['method']} {path}"
        return Step(
            0, exchange.source, exchange.target, text, message["request"], explanation, spec
        )
    answer = message["response"]
    status = message["status"]
    explanation, spec = _explain_response(exchange, path, status, answer)
    if status is None:
        text = "no answer"
    else:
        text = f"{status} {answer.get('error') or _reason(status)}".strip()
    return Step(
        0, exchange.target, exchange.source, text, answer, explanation, spec, note=exchange.note
    )


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _explain_request(exchange: _Exchange, path: str) -> tuple[str, str]:
    shown = exchange.message["request"]
    route = (exchange.source, exchange.target)
    if route == ("party", "client"):
        if path.endswith("/claims-callback"):
            return ("{party}'s browser brings the new ticket and the client's state back.", "CI-6")
        if path.endswith("/note"):
            return ("{party} writes a note in Alice's record.", "G §3.1")
        return ("{party} asks the doctor app for Alice's record.", "G §3.1")
    if route == ("client", "ehr"):
        if shown.get("Authorization"):
            return ("The client presents its RPT to the EHR.", "RS-6")
        return ("The client asks the EHR without a token, as UMA begins.", "RS-1")
    if route == ("ehr", "as"):
        if path.endswith("/permission"):
            return ("The EHR asks Alice's AS for a permission ticket, with Alice's PAT.", "PERM-2")
        if path.endswith("/introspect"):
            return ("The EHR asks the AS what this RPT allows (token introspection).", "INT-1")
        if "resource_set" in path:
            return ("The EHR registers or updates one of Alice's resources.", "checklist §3")
        return ("The EHR calls the AS.", "checklist §2")
    if route == ("client", "as"):
        if path.endswith("uma2-configuration"):
            return ("The client reads the AS's discovery document.", "DISC-1")
        if exchange.message["request"].get("grant_type", "").endswith("uma-ticket"):
            if "ticket" in shown and exchange.polling:
                return ("Polling: the client asks again with the newest ticket.", "TKT-5")
            extras = [
                text
                for name, text in (
                    ("claim_token", "pushing {party}'s ID token as a claim token"),
                    ("pct", "with its PCT"),
                    ("rpt", "with its RPT, to be upgraded"),
                )
                if name in shown
            ]
            return (
                "The client trades the ticket for an RPT" + "".join(", " + e for e in extras) + ".",
                "checklist 6.1",
            )
        return ("The client calls the AS.", "checklist 6")
    if route == ("party", "as"):
        if exchange.message["method"] == "POST":
            return (
                "{party}, signed in at the AS, agrees to go on (claims gathering).",
                "checklist 6.7",
            )
        return (
            "{party}'s browser arrives at the AS's claims interaction endpoint with the ticket.",
            "checklist 6.7",
        )
    if route == ("alice", "as"):
        return ("Alice answers the request in her sharing console.", "checklist 9")
    return ("", "")


def _explain_response(exchange, path: str, status, answer: dict) -> tuple[str, str]:
    route = (exchange.source, exchange.target)
    error = answer.get("error")
    if status is None:
        return ("The call got no answer (the other side is down or too slow).", "RS-3")
    if route == ("client", "ehr"):
        challenge = answer.get("WWW-Authenticate", "")
        if status == 401 and challenge.startswith("UMA"):
            again = (
                " (the RPT did not cover it)"
                if exchange.message["request"].get("Authorization")
                else ""
            )
            return (
                f"401 with a UMA challenge: the AS's address and a permission ticket{again}.",
                "RS-5" if again else "RS-2",
            )
        if status == 403 and "Warning" in answer:
            return (
                "The EHR could not get a permission ticket from the AS: 403 with Warning 199.",
                "RS-3",
            )
        if status in (200, 201):
            return ("The RPT holds the permission: the EHR answers.", "RS-6")
        return (f"The EHR answers {status}.", "RS-7")
    if route == ("ehr", "as"):
        if path.endswith("/permission"):
            if status == 201:
                return ("One ticket standing for the requested permissions.", "PERM-3")
            return (f"The AS refuses the permission request ({error}).", "PERM-4")
        if path.endswith("/introspect"):
            if answer.get("active") is True:
                return ("Active, with its permissions (resource, scopes, expiry).", "INT-4")
            return ("Inactive: the RPT does not count (expired, revoked or not ours).", "INT-3")
        return (f"The AS answers {status}.", "checklist §3")
    if route == ("client", "as"):
        if path.endswith("uma2-configuration"):
            return ("Where the token and claims interaction endpoints are.", "DISC-1")
        if status == 200 and "access_token" in answer:
            upgraded = " It is an upgrade of the old RPT." if answer.get("upgraded") else ""
            return (
                f"Alice's policy allows it: the AS issues an RPT (and a PCT).{upgraded}",
                "UPG-2" if upgraded else "checklist 6.3",
            )
        return _grant_error(error)
    if route == ("party", "client"):
        location = answer.get("Location", "")
        if status == 302 and "ticket=" in location:
            return (
                "The client sends {party}'s browser to the AS's claims interaction endpoint.",
                "CI-7",
            )
        if status == 302 and "/waiting/" in location:
            return ("{party} waits; the client polls the AS while Alice decides.", "TKT-5")
        if status == 200:
            return ("{party} sees the result.", "G §3.1")
        if status == 403:
            return ("The doctor app tells {party} it is not shared with them.", "checklist 6.4")
        if status >= 500:
            return ("The doctor app tells {party} a server could not be reached.", "RS-3")
        return (f"The doctor app answers {status}.", "G §3.1")
    if route == ("party", "as"):
        location = answer.get("Location", "")
        if status == 302 and "ticket=" in location:
            return (
                "Back to the client's claims redirect URI: a new ticket, the same state.",
                "CI-5",
            )
        if status == 302:
            return (
                "{party} is not signed in at the AS yet: first its sign-in page.",
                "checklist 6.7",
            )
        return ("The AS shows {party} what is being asked, and by which app.", "checklist 6.7")
    if route == ("alice", "as"):
        return ("Alice's answer is stored: a policy for {party}, or a refusal.", "checklist 9")
    return ("", "")


GRANT_ERRORS = {
    "need_info": (
        "need_info: the AS must know who is asking: a new ticket, and redirect_user to its "
        "claims interaction endpoint.",
        "checklist 6.4, TKT-4",
    ),
    "request_submitted": (
        "request_submitted: no policy covers this, so Alice has been asked; poll again after "
        "`interval` with the new ticket.",
        "checklist 6.4, TKT-5",
    ),
    "request_denied": ("request_denied: Alice's policies do not allow this.", "checklist 6.4"),
    "invalid_grant": (
        "invalid_grant: that ticket is used up or expired; the client starts again.",
        "TKT-3",
    ),
    "invalid_scope": ("invalid_scope: a scope the resource does not have.", "ASMT-2"),
}


def _grant_error(error: str | None) -> tuple[str, str]:
    return GRANT_ERRORS.get(error or "", (f"The AS answers {error}.", "checklist 6.4"))
