"""Strict JSON parsing for protocol bodies: duplicate members are an error, not last-one-wins."""

import json

from .errors import InvalidRequest


class _DuplicateMember(ValueError):
    pass


def _reject_duplicates(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise _DuplicateMember(key)
        obj[key] = value
    return obj


def parse_json(raw: bytes, content_type: str | None):
    """Decode a request body that must be ``application/json``.

    FedAuthz §3.2 lists "a parameter given more than once" among the 400 cases, and in a JSON
    body that can only mean a repeated member name, which ``json.loads`` would silently merge.
    """
    mimetype = (content_type or "").split(";")[0].strip().lower()
    if mimetype != "application/json":
        raise InvalidRequest("The body must be JSON with Content-Type: application/json.")
    if not raw:
        raise InvalidRequest("The request body is empty.")
    try:
        return json.loads(raw, object_pairs_hook=_reject_duplicates)
    except _DuplicateMember as dup:
        raise InvalidRequest(f"The member '{dup}' appears more than once.") from None
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("The body is not valid JSON.") from None
    except RecursionError:
        raise InvalidRequest("The body is nested too deeply.") from None
