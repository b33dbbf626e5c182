"""A person's browser for ``uma-health scenario``: one cookie jar for the three apps, forms
read from the page and sent as a browser sends them (hidden fields, CSRF token, the button
pressed), and the authorization server's sign-in, consent and claims pages answered.

Only HTTP and HTML: no app is imported, so the scenarios talk to a demo as people do.
"""

import re
from dataclasses import dataclass, field
from html import unescape
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import requests

TIMEOUT = 20  # seconds for one page; the apps answer in well under one


class Unreachable(Exception):
    """A part of the demo did not answer at all (not running, or gone mid-story)."""

    def __init__(self, url: str, detail: str = ""):
        super().__init__(url)
        self.url, self.detail = url, detail


@dataclass
class Form:
    action: str  # absolute
    method: str
    fields: list[tuple[str, str]]  # what a browser sends without a click
    buttons: list[tuple[str, str, str]]  # (name, value, label) of each submit button
    options: dict[str, list[str]] = field(default_factory=dict)  # checkbox/radio/select values


class _FormParser(HTMLParser):
    def __init__(self, base: str):
        super().__init__(convert_charrefs=True)
        self.base, self.forms = base, []
        self._form: Form | None = None
        self._select: str | None = None
        self._select_first: str | None = None
        self._select_chosen = False
        self._textarea: str | None = None
        self._button: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            action = urljoin(self.base, a.get("action") or self.base)
            self._form = Form(action, (a.get("method") or "get").lower(), [], [])
            self.forms.append(self._form)
            return
        form = self._form
        if form is None:
            return
        name = a.get("name", "")
        if tag == "input":
            kind = a.get("type", "text").lower()
            if kind in ("submit", "image"):
                form.buttons.append((name, a.get("value", ""), a.get("value", "")))
            elif kind in ("checkbox", "radio"):
                form.options.setdefault(name, []).append(a.get("value", "on"))
                if "checked" in a:
                    form.fields.append((name, a.get("value", "on")))
            elif name and kind not in ("button", "reset", "file"):
                form.fields.append((name, a.get("value", "")))
        elif tag == "button" and a.get("type", "submit").lower() == "submit":
            self._button = {"name": name, "value": a.get("value", ""), "label": ""}
        elif tag == "select":
            self._select, self._select_first, self._select_chosen = name, None, False
        elif tag == "option" and self._select is not None:
            value = a.get("value", "")
            form.options.setdefault(self._select, []).append(value)
            if self._select_first is None:
                self._select_first = value
            if "selected" in a and not self._select_chosen:
                form.fields.append((self._select, value))
                self._select_chosen = True
        elif tag == "textarea":
            self._textarea = name
            form.fields.append((name, ""))

    def handle_data(self, data):
        if self._button is not None:
            self._button["label"] += data
        elif self._textarea is not None and self._form is not None:
            name, text = self._form.fields[-1]
            self._form.fields[-1] = (name, text + data)

    def handle_endtag(self, tag):
        form = self._form
        if tag == "form":
            self._form = None
        elif form is None:
            return
        elif tag == "button" and self._button is not None:
            b = self._button
            form.buttons.append((b["name"], b["value"], b["label"].strip()))
            self._button = None
        elif tag == "select" and self._select is not None:
            if not self._select_chosen and self._select_first is not None:
                form.fields.append((self._select, self._select_first))
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def forms_of(response: requests.Response) -> list[Form]:
    parser = _FormParser(response.url)
    parser.feed(response.text)
    return parser.forms


def links_of(response: requests.Response) -> list[str]:
    """Every ``href`` on the page, absolute."""
    return [
        urljoin(response.url, unescape(h)) for h in re.findall(r'href="([^"]+)"', response.text)
    ]


def headline(response: requests.Response) -> str:
    """What a person would read first: the page's flash messages, else its heading."""
    flashes = re.findall(r'<p class="flash[^"]*"[^>]*>(.*?)</p>', response.text, re.S)
    heading = re.search(r"<h1[^>]*>(.*?)</h1>", response.text, re.S)
    parts = flashes or ([heading.group(1)] if heading else [])
    text = " ".join(re.sub(r"<[^>]+>", "", unescape(p)) for p in parts)
    return " ".join(text.split()) or f"a page without a heading ({response.status_code})"


class Browser(requests.Session):
    """One person's browser: cookies for every app, pages fetched and forms submitted."""

    def __init__(self, username: str):
        super().__init__()
        self.username = username
        self.headers["User-Agent"] = "uma-health-scenario"

    def request(self, method, url, *args, **kwargs):
        kwargs.setdefault("timeout", TIMEOUT)
        try:
            return super().request(method, url, *args, **kwargs)
        except (requests.ConnectionError, requests.Timeout):
            parts = urlsplit(url)
            raise Unreachable(f"{parts.scheme}://{parts.netloc}") from None

    def form(self, response: requests.Response, action: str) -> Form | None:
        """The page's form whose action path ends with ``action``."""
        for form in forms_of(response):
            if urlsplit(form.action).path.endswith(action):
                return form
        return None

    def submit(
        self,
        response: requests.Response,
        action: str,
        press: str | None = None,
        fill: dict | None = None,
    ) -> requests.Response:
        """Fill in the form on ``response`` whose action ends with ``action`` and press the
        button named or labelled ``press`` (the first button when None). ``fill`` maps a
        field to a value, or to a list of values (checkboxes)."""
        form = self.form(response, action)
        if form is None:
            raise LookupError(f"no form for {action} on {response.url} ({headline(response)})")
        fill = fill or {}
        data = [(n, v) for n, v in form.fields if n not in fill]
        for name, value in fill.items():
            values = value if isinstance(value, (list, tuple)) else [value]
            data.extend((name, v) for v in values)
        pressed = [
            b
            for b in form.buttons
            if press is None or press in (b[0], b[1], b[2]) or b[0].endswith("-" + press)
        ]
        if not pressed:
            raise LookupError(f"no button {press!r} in the form for {action} on {response.url}")
        if pressed[0][0]:
            data.append((pressed[0][0], pressed[0][1]))
        if form.method == "post":
            return self.post(form.action, data=data)
        return self.get(form.action, params=data)

    def through_the_as(self, response: requests.Response) -> requests.Response:
        """Answer the AS's pages until we are sent elsewhere: sign in (demo password =
        username), allow the app asking (consent) and go on at the claims interaction page."""
        for _ in range(5):
            path = urlsplit(response.url).path
            if path.endswith("/login") and 'name="password"' in response.text:
                response = self.submit(
                    response, "/login", fill={"username": self.username, "password": self.username}
                )
            elif path.endswith("/authorize") and 'name="allow"' in response.text:
                response = self.submit(response, "/authorize", press="allow")
            elif path.endswith("/rqp/claims") and 'name="proceed"' in response.text:
                response = self.submit(response, "/rqp/claims", press="proceed")
            else:
                return response
        return response
