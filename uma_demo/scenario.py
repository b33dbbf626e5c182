"""``uma-health scenario``: the demo's stories, run over HTTP against a running demo.

Each story is a list of acts: what the story says happens, and the code that makes it happen
the way people would (Alice at the EHR and in her console, the doctors in the doctor app) and
checks what really happened. One line per act, ``✔`` or ``✘``; after each doctor-side action
the numbered protocol steps of its flow, as the doctor app's "How did I get this?" page tells
them. Stories adapt to what an earlier run left behind (a link, a policy, a refusal), so
they can be run again and again against the same demo.
"""

import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from html import unescape
from urllib.parse import parse_qs, urljoin, urlsplit

from doctor_client.flow_story import Step

from .scenario_http import Browser, Unreachable, headline, links_of

PATIENT = "alice"
DEVICE = "bp-monitor-001"  # provisioned to Alice by the demo (DESIGN.md)
# Resource types are the EHR's wire values (README, "The EHR"): how Alice's console knows them.
RECORD_TYPE = "https://uma-health.example/rsrc/record-set/"
FEED_TYPE = "https://uma-health.example/rsrc/device-feed/blood-pressure"
# The demo's people (DESIGN.md, "Demo accounts"): their groups and their emails' domains, so
# a story can tell which of Alice's policies cover someone.
PEOPLE = {
    "bob": ("Bob", {"surgery-center"}, "surgery.example"),
    "carol": ("Carol", set(), "clinic.example"),
    "dave": ("Dave", {"surgery-center"}, "surgery.example"),
    "mallory": ("Mallory", set(), "elsewhere.example"),
}
DEFAULT_TIMEOUT = 30.0  # for the monitor to show up, a wait to end, a revocation to bite
POLL = 0.5


class Mismatch(Exception):
    """What really happened, when it is not what the story says."""

    def __init__(self, actual: str, flow: list[str] | None = None):
        super().__init__(actual)
        self.actual, self.flow = actual, flow or []


@dataclass
class Done:
    """What happened, and the protocol steps behind it (a doctor-side action)."""

    text: str
    flow: list[str] | None = None


@dataclass(frozen=True)
class Target:
    """One of Alice's resources, as the EHR's directory and the AS know it."""

    label: str  # "her history"
    path: str  # how its URI ends at the EHR
    as_type: str  # its resource type at the AS


HISTORY = Target("her history", "/records/history", RECORD_TYPE + "history")
LABS = Target("her labs", "/records/labs", RECORD_TYPE + "labs")
FEED = Target("her blood-pressure feed", f"/devices/{DEVICE}/readings", FEED_TYPE)


@dataclass
class Opened:
    """What a doctor sees after clicking Open: the record, a chart, a wait or a refusal."""

    kind: str  # "record" | "feed" | "waiting" | "denied" | "other"
    count: int
    summary: str
    page: object  # the requests.Response
    url: str

    def describe(self) -> str:
        if self.kind == "record":
            return f"the record ({self.count} entries)"
        if self.kind == "feed":
            return f"the blood-pressure chart ({self.count} readings)"
        if self.kind == "waiting":
            return "a page waiting for Alice (request_submitted)"
        if self.kind == "denied":
            return f"“Not shared with you” ({self.summary})"
        return f"“{self.summary}” (HTTP {self.page.status_code})"


class Scene:
    """The demo's three apps, and the people using them during one run."""

    def __init__(self, as_url: str, ehr_url: str, doctor_url: str, timeout: float, out=None):
        self.as_url, self.ehr_url, self.doctor_url = (
            u.rstrip("/") for u in (as_url, ehr_url, doctor_url)
        )
        self.timeout = timeout
        self.out = out or sys.stdout
        self.browsers: dict[str, Browser] = {}
        self.shown: dict[str, int] = {}  # flow id → steps printed already
        self.refused_before = False  # Mallory: Alice said no in an earlier run
        self.last_opened: Opened | None = None
        self.titles: dict[Target, str] = {}  # as the doctor app's patient page names them
        self.revoked_at = 0.0

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def browser(self, username: str) -> Browser:
        if username not in self.browsers:
            self.browsers[username] = Browser(username)
        return self.browsers[username]

    # -- Alice at the EHR and in her console

    def alice_protects(self) -> Done:
        alice = self.browser(PATIENT)
        page = alice.get(self.ehr_url + "/")
        if not (alice.form(page, "/protect") or alice.form(page, "/unlink")):
            page = alice.through_the_as(alice.get(self.ehr_url + "/login"))
        if alice.form(page, "/unlink"):
            return Done("Alice signed in at the EHR: her records are protected already")
        if not alice.form(page, "/protect"):
            raise Mismatch(f"the EHR showed “{headline(page)}” after signing in")
        page = alice.through_the_as(alice.submit(page, "/protect"))
        if not alice.form(page, "/unlink"):
            raise Mismatch(f"after Protect my records the EHR showed “{headline(page)}”")
        return Done(
            "Alice signed in at the EHR, clicked Protect my records and allowed the EHR at "
            f"the AS: “{headline(page)}”"
        )

    def console(self, path: str):
        """A page of Alice's console, signing in at the AS first if need be."""
        alice = self.browser(PATIENT)
        page = alice.through_the_as(alice.get(self.as_url + path))
        if "/console" not in urlsplit(page.url).path:
            raise Mismatch(f"Alice's console showed “{headline(page)}” at {page.url}")
        return page

    def owner_api(self, path: str):
        """Alice's own view of her resources, policies and requests (the owner JSON API)."""
        answer = self.browser(PATIENT).get(self.as_url + "/api/owner/" + path)
        if answer.status_code == 401:
            self.console("/console/")
            answer = self.browser(PATIENT).get(self.as_url + "/api/owner/" + path)
        if answer.status_code != 200:
            raise Mismatch(f"GET /api/owner/{path} answered {answer.status_code}")
        return answer.json()

    def resource(self, target: Target) -> dict:
        found = [r for r in self.owner_api("resources") if r["type"] == target.as_type]
        if target is FEED:
            found = [r for r in found if DEVICE in (r.get("name") or "")] or found
        if not found:
            raise Mismatch(f"the AS holds no resource of Alice's of type {target.as_type}")
        return found[0]

    def policies_covering(self, username: str, resource_id: str, scopes=()) -> list[dict]:
        """Alice's live policies that let ``username`` use the resource with ``scopes``."""
        _name, groups, domain = PEOPLE[username]
        now = datetime.now(UTC)
        covering = []
        for policy in self.owner_api("policies"):
            subject = policy["subject"]
            if policy.get("revoked_at") or resource_id not in policy["resources"]:
                continue
            expires = policy.get("expires_at")
            if expires and datetime.fromisoformat(expires.replace("Z", "+00:00")) <= now:
                continue
            if not set(scopes) <= set(policy["scopes"]):
                continue
            if (
                (subject["type"] == "user" and subject.get("username") == username)
                or (subject["type"] == "group" and subject.get("name") in groups)
                or (subject["type"] == "email_domain" and subject.get("domain") == domain)
            ):
                covering.append(policy)
        return covering

    def share(self, target: Target, kind: str, who: str, scopes: list[str], person: str) -> Done:
        """Alice shares ``target`` in her console, unless a policy already does exactly that."""
        resource = self.resource(target)
        for policy in self.policies_covering(person, resource["id"], scopes):
            subject = policy["subject"]
            if subject["type"] == kind and who in (subject.get("name"), subject.get("username")):
                return Done(
                    f"Alice shared {target.label} with {who} before (policy #{policy['id']})"
                )
        page = self.console(f"/console/share?r={resource['id']}")
        fill = {
            "resources": [resource["id"]],
            "subject_type": kind,
            "subject": who,
            "scopes": scopes,
            "duration": "30d",
        }
        page = self.browser(PATIENT).submit(page, "/console/share", press="Share", fill=fill)
        if "takes effect at once" not in page.text:
            raise Mismatch(f"the console answered “{headline(page)}”")
        made = self.policies_covering(person, resource["id"], scopes)
        if not made:
            raise Mismatch(f"the console said “{headline(page)}” yet no policy covers {person}")
        return Done(
            f"Alice shared {target.label} with {who} ({', '.join(scopes)}, 30 days) in her "
            f"console: “{headline(page)}”"
        )

    # -- the doctors

    def doctor_signs_in(self, username: str) -> Done:
        doctor = self.browser(username)
        name = PEOPLE[username][0]
        if doctor.form(doctor.get(self.doctor_url + "/"), "/patients"):
            return Done(f"{name} is signed in to the doctor app")
        page = doctor.through_the_as(doctor.get(self.doctor_url + "/login"))
        if not doctor.form(page, "/patients"):
            raise Mismatch(f"the doctor app showed “{headline(page)}” after signing in")
        return Done(f"{name} signed in to the doctor app (OpenID Connect at the AS)")

    def open(self, username: str, target: Target) -> Opened:
        """Open Alice in the doctor app, then click Open on ``target``'s row."""
        doctor = self.browser(username)
        page = doctor.get(self.doctor_url + "/patients", params={"name": PATIENT})
        for link in links_of(page):
            parts = urlsplit(link)
            uri = parse_qs(parts.query).get("url", [""])[0]
            if parts.path.endswith("/open") and urlsplit(uri).path.endswith(target.path):
                self.titles[target] = parse_qs(parts.query).get("title", [target.label])[0]
                break
        else:
            raise Mismatch(
                f"the doctor app's page for {PATIENT} has no Open link for {target.label} "
                f"(“{headline(page)}”)"
            )
        return self.look(doctor.through_the_as(doctor.get(link)))

    def look(self, page) -> Opened:
        """What the page a doctor landed on shows."""
        text, path = page.text, urlsplit(page.url).path
        count = re.search(r"(\d+) (entries|readings) ·", text)
        number = int(count.group(1)) if count else 0
        if page.status_code == 200 and "read with your UMA token" in text:
            return Opened("record", number, headline(page), page, page.url)
        if page.status_code == 200 and count and count.group(2) == "readings":
            return Opened("feed", number, headline(page), page, page.url)
        if "/waiting/" in path and "Waiting for the patient" in text:
            return Opened("waiting", 0, headline(page), page, page.url)
        if "Not shared with you" in text:
            message = re.search(r'<p class="error">(.*?)</p>', text, re.S)
            summary = " ".join(unescape(message.group(1) if message else "").split())
            return Opened("denied", 0, summary or headline(page), page, page.url)
        return Opened("other", 0, headline(page), page, page.url)

    def flow(self, username: str, page) -> list[str]:
        """The numbered steps of the flow behind ``page`` ("How did I get this?")."""
        doctor = self.browser(username)
        how = [u for u in links_of(page) if re.search(r"/how/[A-Za-z0-9_-]+$", u)]
        if how:
            url = how[0]
        else:  # a waiting or refusal page has no link: the person's latest flow
            answer = doctor.get(self.doctor_url + "/how", allow_redirects=False)
            if answer.status_code != 302:
                return [f"    (no flow: GET /how answered {answer.status_code})"]
            url = urljoin(answer.url, answer.headers["Location"])
        answer = doctor.get(url + ".json")
        if answer.status_code != 200:
            return [f"    (no flow: GET {urlsplit(url).path}.json answered {answer.status_code})"]
        told = answer.json()
        steps = [
            Step(
                number=s["n"],
                source=s["from"],
                target=s["to"],
                message=s["message"],
                details=s["details"],
                explanation=s["explanation"],
                spec=s["spec"],
                repeated=s.get("repeated", 1),
                note=s.get("note"),
            )
            for s in told["steps"]
        ]
        seen = self.shown.get(told["flow_id"], 0)
        self.shown[told["flow_id"]] = len(steps)
        name = PEOPLE[username][0]
        lines = [f"    How {name} got this (flow “{told['title']}”, {len(steps)} steps):"]
        if seen:
            lines.append(f"     1.–{seen}. as above")
        for step in steps[seen:]:
            lines.extend("    " + line for line in step.line().splitlines())
        for part in told.get("unreachable") or []:
            lines.append(f"    (the {part}'s steps could not be fetched)")
        return lines

    def opens(self, username: str, target: Target, expect: set[str], why: str = "") -> Done:
        """``username`` opens ``target``; what they see must be one of ``expect``."""
        opened = self.last_opened = self.open(username, target)
        flow = self.flow(username, opened.page)
        name = PEOPLE[username][0]
        if opened.kind not in expect:
            raise Mismatch(f"{name} got {opened.describe()}", flow)
        if opened.kind == "feed" and opened.count == 0:
            raise Mismatch(f"{name} got the chart, but with no readings yet", flow)
        title = self.titles.get(target, target.label)
        return Done(f"{name} opened {title}: {opened.describe()}{why}", flow)

    # -- the stories' own acts

    def feed_online(self) -> Done:
        """The monitor announced itself and the EHR registered its feed as Alice's resource."""
        deadline = time.monotonic() + self.timeout
        seen = None
        while True:
            directory = self.browser(PATIENT).get(f"{self.ehr_url}/api/patients/{PATIENT}")
            if directory.status_code == 200:
                feeds = [
                    r
                    for r in directory.json().get("resources", [])
                    if r.get("kind") == "device_feed" and r.get("device_id") == DEVICE
                ]
                seen = feeds[0] if feeds else None
                if seen and seen.get("protected"):
                    resource = self.resource(FEED)
                    return Done(
                        f"the monitor {DEVICE} has announced itself; its feed is Alice's "
                        f"resource “{resource['name']}” at the AS"
                    )
            if time.monotonic() > deadline:
                break
            time.sleep(POLL)
        if seen is None:
            raise Mismatch(
                f"after {self.timeout:.0f} s the EHR still lists no feed of {DEVICE}: the "
                "monitor has not announced itself (is the demo's monitor running, and the "
                "MQTT broker?)"
            )
        raise Mismatch(
            f"the feed of {DEVICE} is online but after {self.timeout:.0f} s still not "
            "registered at the AS"
        )

    def carol_reads_the_feed(self) -> Done:
        """Readings arrive every few seconds: a chart with none yet is given a moment."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return self.opens("carol", FEED, {"feed"})
            except Mismatch as mismatch:
                if "no readings yet" not in mismatch.actual or time.monotonic() > deadline:
                    raise
            time.sleep(1)

    def mallory_never_shared(self) -> Done:
        """The story's starting point: no policy lets Mallory read the labs. Alice may have
        refused her in an earlier run; the AS remembers that, and the story adapts."""
        labs = self.resource(LABS)
        revoked = []
        for policy in self.policies_covering("mallory", labs["id"]):
            self.revoke_in_console(policy["id"])
            revoked.append(f"#{policy['id']}")
        refused = [
            r
            for r in self.owner_api("requests?status=denied")
            if r["requester"]["username"] == "mallory" and r["resource"]["id"] == labs["id"]
        ]
        self.refused_before = bool(refused)
        done = "no policy lets Mallory read Alice's labs"
        if revoked:
            done += f" (Alice revoked {', '.join(revoked)}, left by an earlier session)"
        if labs.get("uncovered") == "deny":
            # Someone set "deny at once": Alice would never be asked. The story needs "ask me".
            page = self.console(f"/console/resources/{labs['id']}")
            page = self.browser(PATIENT).submit(
                page, f"/console/resources/{labs['id']}", fill={"uncovered": "ask"}
            )
            if self.resource(LABS).get("uncovered") != "ask":
                raise Mismatch(f"setting her labs to “ask me” answered “{headline(page)}”")
            done += "; her labs said “deny at once” to others, set back to “ask me”"
        if self.refused_before:
            done += (
                "; Alice said no to Mallory in an earlier run, and the AS remembers: this time "
                "Mallory is refused at once (request_denied) and Alice is not asked again"
            )
        return Done(done)

    def mallory_asks(self) -> Done:
        if self.refused_before:
            return self.opens("mallory", LABS, {"denied"}, " at once: Alice said no before")
        return self.opens("mallory", LABS, {"waiting"})

    def alice_denies(self) -> Done:
        labs = self.resource(LABS)
        pending = [
            r
            for r in self.owner_api("requests")
            if r["requester"]["username"] == "mallory" and r["resource"]["id"] == labs["id"]
        ]
        if self.refused_before:
            if pending:
                raise Mismatch(f"a new request of Mallory's reached Alice (#{pending[0]['id']})")
            return Done("no new request reached Alice's console: she had answered already")
        if not pending:
            raise Mismatch("Alice's console shows no pending request from Mallory for her labs")
        request_id = pending[0]["id"]
        page = self.console("/console/requests")
        page = self.browser(PATIENT).submit(page, f"/console/requests/{request_id}", press="Deny")
        if "Denied mallory" not in page.text:
            raise Mismatch(f"the console answered “{headline(page)}”")
        return Done(
            f"Alice saw Mallory's request (#{request_id}) in her console and clicked Deny: "
            f"“{headline(page)}”"
        )

    def mallory_refused(self) -> Done:
        mallory = self.browser("mallory")
        if self.refused_before:
            return Done("Mallory was refused at once (above): “Not shared with you”")
        # Her waiting page reloads itself; each load lets the doctor app poll the AS.
        waiting = self.last_opened.url
        deadline = time.monotonic() + self.timeout
        while True:
            opened = self.look(mallory.get(waiting))
            if opened.kind != "waiting" or time.monotonic() > deadline:
                break
            time.sleep(POLL)
        flow = self.flow("mallory", opened.page)
        if opened.kind != "denied":
            raise Mismatch(f"Mallory's waiting page showed {opened.describe()}", flow)
        return Done(f"Mallory's waiting page ended by itself: {opened.describe()}", flow)

    def revoke_in_console(self, policy_id: int) -> str:
        page = self.console("/console/policies")
        page = self.browser(PATIENT).submit(page, f"/console/policies/{policy_id}", press="Revoke")
        if "Revoked" not in page.text:
            raise Mismatch(f"revoking policy #{policy_id}: the console answered “{headline(page)}”")
        return headline(page)

    def bob_has_access(self) -> Done:
        """The story's starting point: a policy lets Bob read Alice's history."""
        history = self.resource(HISTORY)
        covering = self.policies_covering("bob", history["id"], ["read"])
        if covering:
            ids = ", ".join(f"#{p['id']}" for p in covering)
            return Done(f"Alice's policies let Bob read her history ({ids})")
        return self.share(HISTORY, "group", "surgery-center", ["read"], "bob")

    def alice_revokes_bob(self) -> Done:
        history = self.resource(HISTORY)
        covering = self.policies_covering("bob", history["id"])
        if not covering:
            raise Mismatch("no policy of Alice's lets Bob read her history")
        said = ""
        for policy in covering:
            said = self.revoke_in_console(policy["id"])
        self.revoked_at = time.monotonic()
        left = self.policies_covering("bob", history["id"])
        if left:
            raise Mismatch(f"policy #{left[0]['id']} still lets Bob read her history")
        labels = ", ".join(f"#{p['id']} ({_subject(p)})" for p in covering)
        return Done(f"Alice revoked {labels} under Who has access: “{said}”")

    def bob_refused(self) -> Done:
        """The EHR may still honour a cached introspection for a few seconds (README: 5 s);
        Bob tries again until it stops, within the timeout."""
        deadline = time.monotonic() + self.timeout
        while True:
            opened = self.open("bob", HISTORY)
            if opened.kind != "record" or time.monotonic() > deadline:
                break
            time.sleep(POLL)
        waited = time.monotonic() - self.revoked_at
        flow = self.flow("bob", opened.page)
        if opened.kind not in ("waiting", "denied"):
            raise Mismatch(f"{waited:.0f} s after the revocation Bob got {opened.describe()}", flow)
        return Done(
            f"{waited:.1f} s after the revocation Bob no longer gets the record: "
            f"{opened.describe()}",
            flow,
        )


def _subject(policy: dict) -> str:
    subject = policy["subject"]
    return subject.get("username") or subject.get("name") or subject.get("domain") or "?"


@dataclass
class Act:
    expected: str  # what the story says happens
    perform: Callable[[Scene], Done]


@dataclass
class Story:
    name: str
    title: str
    acts: list[Act]


PROTECTED = Act("Alice's records are protected by her AS", Scene.alice_protects)

STORIES = {
    "surgery": Story(
        "surgery",
        "the surgery center reads Alice's history",
        [
            PROTECTED,
            Act(
                "Alice shares her history with the group surgery-center (read)",
                lambda s: s.share(HISTORY, "group", "surgery-center", ["read"], "bob"),
            ),
            Act("Bob signs in to the doctor app", lambda s: s.doctor_signs_in("bob")),
            Act("Bob reads Alice's history", lambda s: s.opens("bob", HISTORY, {"record"})),
        ],
    ),
    "device": Story(
        "device",
        "Carol watches Alice's blood-pressure monitor",
        [
            PROTECTED,
            Act(f"the monitor {DEVICE} is online and its feed protected", Scene.feed_online),
            Act(
                "Alice shares her blood-pressure feed with Carol (read)",
                lambda s: s.share(FEED, "user", "carol", ["read"], "carol"),
            ),
            Act("Carol signs in to the doctor app", lambda s: s.doctor_signs_in("carol")),
            Act("Carol sees the readings", Scene.carol_reads_the_feed),
        ],
    ),
    "stranger": Story(
        "stranger",
        "Mallory asks for Alice's labs and Alice says no",
        [
            PROTECTED,
            Act("Alice has never shared her labs with Mallory", Scene.mallory_never_shared),
            Act("Mallory signs in to the doctor app", lambda s: s.doctor_signs_in("mallory")),
            Act("Mallory opens Alice's labs and waits for Alice", Scene.mallory_asks),
            Act("Alice denies Mallory's request in her console", Scene.alice_denies),
            Act("Mallory's wait ends with “Not shared with you”", Scene.mallory_refused),
        ],
    ),
    "revoke": Story(
        "revoke",
        "Alice revokes what let Bob read her history",
        [
            PROTECTED,
            Act("a policy of Alice's lets Bob read her history", Scene.bob_has_access),
            Act("Bob signs in to the doctor app", lambda s: s.doctor_signs_in("bob")),
            Act("Bob reads Alice's history", lambda s: s.opens("bob", HISTORY, {"record"})),
            Act("Alice revokes every policy that lets Bob read it", Scene.alice_revokes_bob),
            Act("Bob's next open no longer returns the record", Scene.bob_refused),
        ],
    ),
}
ORDER = ("surgery", "device", "stranger", "revoke")


@dataclass
class Failure:
    story: str
    expected: str
    actual: str


def play(scene: Scene, story: Story) -> Failure | None:
    """Run one story's acts in order; the first that goes otherwise ends the story."""
    scene.say(f"\n━━ {story.name}: {story.title} ━━")
    for act in story.acts:
        try:
            done = act.perform(scene)
        except Unreachable:
            raise
        except Mismatch as mismatch:
            scene.say(f"✘ {act.expected} but {mismatch.actual}")
            for line in mismatch.flow:
                scene.say(line)
            return Failure(story.name, act.expected, mismatch.actual)
        except Exception as error:  # noqa: BLE001 (a surprise is a failed act, not a crash)
            actual = f"the scenario stopped: {type(error).__name__}: {error}"
            scene.say(f"✘ {act.expected} but {actual}")
            return Failure(story.name, act.expected, actual)
        scene.say(f"✔ {done.text}")
        for line in done.flow or []:
            scene.say(line)
    return None


def check_running(scene: Scene) -> None:
    """Each app answers ``/healthz``, or :class:`Unreachable` names the one that did not."""
    probe = Browser("probe")
    for base in (scene.as_url, scene.ehr_url, scene.doctor_url):
        answer = probe.get(base + "/healthz")
        if answer.status_code != 200:
            raise Unreachable(base, f"GET /healthz answered {answer.status_code}")


def public_urls(scene: Scene) -> dict[str, str]:
    """The addresses the apps call themselves by (the AS's issuer, the redirect URIs the EHR
    and the doctor app send to it). A browser must use those: cookies and OAuth redirects
    go there, so ``localhost`` and ``127.0.0.1`` are two different sites to them."""
    probe = Browser("probe")
    found = {}
    discovery = probe.get(scene.as_url + "/.well-known/openid-configuration")
    if discovery.status_code == 200 and isinstance(discovery.json().get("issuer"), str):
        found["as_url"] = discovery.json()["issuer"].rstrip("/")
    for attr in ("ehr_url", "doctor_url"):
        start = probe.get(getattr(scene, attr) + "/login", allow_redirects=False)
        redirect_uri = parse_qs(urlsplit(start.headers.get("Location", "")).query).get(
            "redirect_uri", [""]
        )[0]
        if redirect_uri.endswith("/auth/callback"):
            found[attr] = redirect_uri.removesuffix("/auth/callback")
    return {attr: url for attr, url in found.items() if url != getattr(scene, attr)}


def adopt_public_urls(scene: Scene) -> None:
    for attr, url in public_urls(scene).items():
        label = APP_NAMES[attr]
        scene.say(f"(the {label} calls itself {url}, not {getattr(scene, attr)}: using {url})")
        setattr(scene, attr, url)
    check_running(scene)


APP_NAMES = {"as_url": "authorization server", "ehr_url": "EHR", "doctor_url": "doctor app"}


def _which(scene: Scene, url: str) -> str:
    """Which part of the demo lives at ``url`` (scheme://host:port)."""
    for attr, label in APP_NAMES.items():
        if urlsplit(getattr(scene, attr)).netloc == urlsplit(url).netloc:
            return f"the {label} at {getattr(scene, attr)}"
    return url


def run(names: list[str], scene: Scene) -> int:
    """Play the stories; 0 when every act went as told, 1 when one did not, 2 when a part
    of the demo did not answer."""
    try:
        check_running(scene)
        adopt_public_urls(scene)
        failures = [f for f in (play(scene, STORIES[n]) for n in names) if f is not None]
    except Unreachable as gone:
        print(
            f"uma-health scenario: {_which(scene, gone.url)} did not answer"
            f"{f' ({gone.detail})' if gone.detail else ''}; is the demo "
            "running (make demo)? Otherwise point --as-url/--ehr-url/--doctor-url at it.",
            file=sys.stderr,
            flush=True,
        )
        return 2
    if failures:
        first = failures[0]
        print(
            f"uma-health scenario: {len(failures)} of {len(names)} stories went otherwise; "
            f"{first.story}: {first.expected} but {first.actual}",
            file=sys.stderr,
            flush=True,
        )
        return 1
    scene.say(
        f"\nAll {len(names)} stories went as told."
        if len(names) > 1
        else "\nThe story went as told."
    )
    return 0
