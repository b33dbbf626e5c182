"""The client side of the UMA grant (UMA Grant §3): request → 401 + ticket → discovery from
``as_uri`` → the token endpoint with the ticket and the person's claims → RPT → retry.

No Flask and no database: ``UmaClient.call`` takes the person's tokens (``Tokens``), updates
them in place, and returns what happened as one of the ``Outcome`` classes, which the views
turn into pages.
"""

import re
import time
from dataclasses import dataclass, field

import requests

UMA_GRANT = "urn:ietf:params:oauth:grant-type:uma-ticket"
ID_TOKEN_FORMAT = "http://openid.net/specs/openid-connect-core-1_0.html#IDToken"
UNREACHABLE = "UMA Authorization Server Unreachable"
_PARAM = re.compile(r'(\w+)="([^"]*)"')
# TKT-4: every ticket the AS hands back must differ from the one it was given.
SAME_TICKET = (
    "The authorization server handed back the ticket it was given instead of a new one, "
    "so the request stops here."
)


@dataclass
class Tokens:
    """What this client holds for one person at one AS."""

    id_token: str | None = None  # pushed as the claim token while valid
    rpt: str | None = None
    rpt_expires_at: float | None = None
    pct: str | None = None


# -- outcomes --------------------------------------------------------------------------------


@dataclass
class Answered:
    """The resource server answered (the data, or a non-UMA error such as 404)."""

    response: requests.Response


@dataclass
class NeedsSignIn:
    """``need_info`` with ``redirect_user``: send the person to the claims endpoint."""

    as_uri: str
    ticket: str
    redirect_user: str


@dataclass
class Waiting:
    """``request_submitted``: the owner was asked; poll with ``ticket`` after ``interval``."""

    as_uri: str
    ticket: str
    interval: int


@dataclass
class Denied:
    description: str


@dataclass
class Failed:
    """Something on the way broke (the AS or the EHR unreachable, an unexpected answer)."""

    description: str


Outcome = Answered | NeedsSignIn | Waiting | Denied | Failed


def _why_no_ticket(response: requests.Response) -> str:
    """RS-3's Warning covers an outage and lasting causes (a revoked PAT, a resource the AS
    lost) alike; the EHR's own description tells the person which, so it is passed on."""
    try:
        said = response.json().get("error_description")
    except (ValueError, AttributeError):
        said = None
    if isinstance(said, str) and said.strip():
        return "The EHR could not get a permission ticket: " + said.strip()[:300]
    return "The EHR cannot reach the authorization server right now."


@dataclass
class Challenge:
    as_uri: str
    ticket: str


def parse_challenge(header: str | None) -> Challenge | None:
    """``WWW-Authenticate: UMA realm="…", as_uri="…", ticket="…"`` (UMA Grant §3.2)."""
    if not header or not header.strip().lower().startswith("uma "):
        return None
    params = dict(_PARAM.findall(header))
    if not params.get("as_uri") or not params.get("ticket"):
        return None
    return Challenge(params["as_uri"].rstrip("/"), params["ticket"])


@dataclass
class UmaClient:
    client_id: str
    client_secret: str
    # The authorization servers this client has credentials at. A resource server may name
    # any as_uri; the client's secret, the person's ID token and PCT go to these only.
    trusted: frozenset[str] = frozenset()
    timeout: float = 10.0
    http: requests.Session = field(default_factory=requests.Session, repr=False)
    _discovery: dict = field(default_factory=dict, repr=False)

    # -- the whole dance

    def call(self, method: str, url: str, tokens: Tokens, body: dict | None = None) -> Outcome:
        """One request as far as it can go without the person: at most two tickets (a
        rejected ticket, ``invalid_grant``, restarts the dance once)."""
        for _attempt in range(2):
            response = self._request(method, url, tokens, body)
            if isinstance(response, Failed):
                return response
            challenge = parse_challenge(response.headers.get("WWW-Authenticate"))
            if response.status_code != 401 or challenge is None:
                if response.status_code == 403 and UNREACHABLE in response.headers.get(
                    "Warning", ""
                ):
                    return Failed(_why_no_ticket(response))
                return Answered(response)
            if challenge.as_uri not in self.trusted:
                return Failed(
                    f"The EHR sends us to an authorization server this app does not know "
                    f"({challenge.as_uri}); nothing was sent there."
                )
            outcome = self.redeem(challenge.as_uri, challenge.ticket, tokens)
            if outcome == "invalid_grant":
                continue
            if outcome is not None:
                return outcome
            # An RPT came: try the resource again with it.
            response = self._request(method, url, tokens, body)
            if isinstance(response, Failed):
                return response
            if response.status_code == 401:
                return Denied("The authorization server granted less than this request needs.")
            return Answered(response)
        return Failed("The authorization server kept rejecting the tickets.")

    def redeem(self, as_uri: str, ticket: str, tokens: Tokens):
        """UMA Grant §3.3.1: trade a ticket for an RPT. None when ``tokens`` now holds one;
        "invalid_grant" when the ticket is dead; otherwise an Outcome."""
        if as_uri not in self.trusted:
            return Failed("That authorization server is not one this app works with.")
        try:
            metadata = self.metadata(as_uri)
            token_endpoint = metadata["token_endpoint"]
        except (requests.RequestException, KeyError, TypeError, ValueError):
            return Failed("The authorization server cannot be reached.")
        data = {"grant_type": UMA_GRANT, "ticket": ticket}
        if tokens.id_token:
            data.update(claim_token=tokens.id_token, claim_token_format=ID_TOKEN_FORMAT)
        if tokens.pct:
            data["pct"] = tokens.pct
        if tokens.rpt and (tokens.rpt_expires_at or 0) > time.time():
            data["rpt"] = tokens.rpt  # ask for an upgrade (UMA Grant §3.3.1, §3.3.5.1)
        try:
            response = self.http.post(
                token_endpoint,
                data=data,
                auth=(self.client_id, self.client_secret),
                timeout=self.timeout,
            )
            answer = response.json()
        except (requests.RequestException, ValueError):
            answer = None
        if not isinstance(answer, dict):
            return Failed("The authorization server did not answer the token request.")
        if response.status_code == 200 and answer.get("access_token"):
            # upgraded or not, the new RPT is the one to use: if the AS did not upgrade,
            # the old one's permissions are lost, and a later request simply asks again.
            tokens.rpt = answer["access_token"]
            tokens.rpt_expires_at = time.time() + int(answer.get("expires_in", 60))
            tokens.pct = answer.get("pct") or tokens.pct
            return None
        error = answer.get("error")
        ticket_back = answer.get("ticket")
        if error in ("need_info", "request_submitted") and ticket_back == ticket:
            return Failed(SAME_TICKET)
        if error == "need_info" and answer.get("redirect_user") and isinstance(ticket_back, str):
            # Only to the AS's own claims endpoint: never an open redirect for the AS's answer.
            endpoint = metadata.get("claims_interaction_endpoint")
            if not endpoint or answer["redirect_user"].split("?")[0] != endpoint:
                return Failed("The authorization server asked to send you somewhere unexpected.")
            return NeedsSignIn(as_uri, ticket_back, endpoint)
        if error == "need_info" and tokens.pct:
            tokens.pct = None  # a PCT the AS no longer honours; try once more without it
            return "invalid_grant"
        if error == "request_submitted" and isinstance(ticket_back, str):
            interval = answer.get("interval", 5)
            interval = interval if isinstance(interval, int) and 0 < interval <= 3600 else 5
            return Waiting(as_uri, ticket_back, interval)
        if error == "request_denied":
            return Denied(answer.get("error_description") or "The owner has not allowed this.")
        if error == "invalid_grant":
            if "rpt" in data:
                tokens.rpt = None  # the RPT we asked to upgrade is no longer good
            return "invalid_grant"
        return Failed(f"The authorization server answered {error or response.status_code}.")

    # -- plumbing

    def metadata(self, as_uri: str) -> dict:
        """UMA discovery (DISC-1) from the AS the resource server named; kept per process, as
        endpoints do not move while the demo runs."""
        if as_uri not in self._discovery:
            response = self.http.get(
                as_uri + "/.well-known/uma2-configuration", timeout=self.timeout
            )
            document = response.json()
            if not isinstance(document, dict) or document.get("issuer") != as_uri:
                raise ValueError("discovery names another issuer")
            self._discovery[as_uri] = document
        return self._discovery[as_uri]

    def _request(self, method, url, tokens: Tokens, body):
        headers = {"Accept": "application/json"}
        if tokens.rpt and (tokens.rpt_expires_at or 0) > time.time():
            headers["Authorization"] = f"Bearer {tokens.rpt}"  # RFC 6750, to the RS only
        try:
            return self.http.request(method, url, json=body, headers=headers, timeout=self.timeout)
        except requests.RequestException:
            return Failed("The EHR cannot be reached.")
