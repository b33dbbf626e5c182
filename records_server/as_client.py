"""The EHR's side of the UMA protection API (FedAuthz §2–5): discovery, resource
registration, permission requests and RPT introspection, over HTTP with a PAT.

No Flask in here: the calls take plain values and raise typed errors, so the views decide
what the client sees (RS-2, RS-3).
"""

import time
from dataclasses import dataclass, field

import requests

UMA_DISCOVERY = "/.well-known/uma2-configuration"
# Discovery documents change rarely; an hour bounds how stale an endpoint can be.
DISCOVERY_TTL = 3600


class ASUnavailable(Exception):
    """The AS could not be reached or answered nonsense: the caller says so (RS-3)."""


class PatRejected(ASUnavailable):
    """The AS refused the PAT (401/403): expired, revoked, or never valid."""


class NotRegistered(Exception):
    """The AS has no such resource (404) or refused a permission for it (400)."""


@dataclass
class ASClient:
    """Talks to one authorization server as one resource-server client."""

    issuer: str
    client_id: str
    client_secret: str
    timeout: float = 5.0
    http: requests.Session = field(default_factory=requests.Session, repr=False)
    _metadata: dict | None = field(default=None, repr=False)
    _fetched_at: float = field(default=0.0, repr=False)

    # -- discovery (DISC-1): every endpoint comes from the issuer's document

    def metadata(self) -> dict:
        if self._metadata is None or time.monotonic() - self._fetched_at > DISCOVERY_TTL:
            doc = self._json("GET", self.issuer.rstrip("/") + UMA_DISCOVERY, expect=(200,))
            if doc.get("issuer") != self.issuer.rstrip("/"):
                raise ASUnavailable(f"discovery names issuer {doc.get('issuer')!r}")
            self._metadata, self._fetched_at = doc, time.monotonic()
        return self._metadata

    def endpoint(self, name: str) -> str:
        url = self.metadata().get(name)
        if not isinstance(url, str):
            raise ASUnavailable(f"the AS does not advertise {name}")
        return url

    # -- resource registration (FedAuthz §3)

    def register(self, pat: str, description: dict) -> str:
        body = self._json(
            "POST",
            self.endpoint("resource_registration_endpoint"),
            pat,
            json=description,
            expect=(201,),
        )
        return _string_id(body)

    def update(self, pat: str, resource_id: str, description: dict) -> None:
        self._json("PUT", self._resource_url(resource_id), pat, json=description, expect=(200,))

    def delete(self, pat: str, resource_id: str) -> None:
        """Deregister; a resource the AS no longer knows counts as deleted."""
        try:
            self._json("DELETE", self._resource_url(resource_id), pat, expect=(200, 204))
        except NotRegistered:
            pass

    def list_ids(self, pat: str) -> list[str]:
        ids = self._json("GET", self.endpoint("resource_registration_endpoint"), pat, expect=(200,))
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ASUnavailable("the resource list is not an array of ids")
        return ids

    # -- permission endpoint (FedAuthz §4) and introspection (FedAuthz §5)

    def request_ticket(self, pat: str, permissions: list[dict]) -> str:
        body = self._json(
            "POST", self.endpoint("permission_endpoint"), pat, json=permissions, expect=(201,)
        )
        ticket = body.get("ticket") if isinstance(body, dict) else None
        if not isinstance(ticket, str) or not ticket:
            raise ASUnavailable("the permission endpoint returned no ticket")
        return ticket

    def introspect(self, pat: str, rpt: str) -> dict:
        body = self._json(
            "POST",
            self.endpoint("introspection_endpoint"),
            pat,
            data={"token": rpt, "token_type_hint": "access_token"},
            expect=(200,),
        )
        if not isinstance(body, dict) or not isinstance(body.get("active"), bool):
            raise ASUnavailable("introspection answer without 'active'")
        return body

    def revoke(self, token: str, hint: str) -> None:
        """RFC 7009 with the EHR's client credentials; best effort (the link goes anyway)."""
        try:
            self.http.post(
                self.endpoint("revocation_endpoint"),
                data={"token": token, "token_type_hint": hint},
                auth=(self.client_id, self.client_secret),
                timeout=self.timeout,
            )
        except (requests.RequestException, ASUnavailable):
            pass

    # -- plumbing

    def _resource_url(self, resource_id: str) -> str:
        return self.endpoint("resource_registration_endpoint").rstrip("/") + "/" + resource_id

    def _json(self, method: str, url: str, pat: str | None = None, expect=(200,), **kwargs):
        headers = {"Authorization": f"Bearer {pat}"} if pat else {}
        try:
            response = self.http.request(
                method, url, headers=headers, timeout=self.timeout, **kwargs
            )
        except requests.RequestException as error:
            raise ASUnavailable(f"{method} {url}: {error.__class__.__name__}") from None
        if response.status_code in (401, 403) and pat:
            raise PatRejected(f"{method} {url}: {response.status_code}")
        if response.status_code in (400, 404) and pat:
            raise NotRegistered(_error_code(response))
        if response.status_code not in expect:
            raise ASUnavailable(f"{method} {url}: unexpected {response.status_code}")
        if response.status_code == 204:
            return None
        try:
            return response.json()
        except ValueError:
            raise ASUnavailable(f"{method} {url}: the answer is not JSON") from None


def _string_id(body) -> str:
    resource_id = body.get("_id") if isinstance(body, dict) else None
    if not isinstance(resource_id, str) or not resource_id:
        raise ASUnavailable("registration answer without '_id'")
    return resource_id


def _error_code(response: requests.Response) -> str:
    try:
        return str(response.json().get("error", response.status_code))
    except (ValueError, AttributeError):
        return str(response.status_code)
