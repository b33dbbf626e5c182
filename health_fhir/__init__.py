"""Readable summaries of FHIR R4 resources, shared by the EHR's and the doctor app's pages
(presentation only: no Flask, no HTML, no protocol)."""


def _text(concept) -> str:
    if not isinstance(concept, dict):
        return ""
    if concept.get("text"):
        return str(concept["text"])
    codings = concept.get("coding") or [{}]
    return str(codings[0].get("display") or codings[0].get("code") or "")


def _who(reference) -> str:
    return str(reference.get("display", "")) if isinstance(reference, dict) else ""


def _quantity(q) -> str:
    if not isinstance(q, dict) or "value" not in q:
        return ""
    return f"{q['value']} {q.get('unit', '')}".strip()


def _range(ranges) -> str:
    if not ranges or not isinstance(ranges[0], dict):
        return ""
    low, high = ranges[0].get("low") or {}, ranges[0].get("high") or {}
    unit = high.get("unit") or low.get("unit") or ""
    if "value" in low and "value" in high:
        return f"{low['value']}–{high['value']} {unit}".strip()
    if "value" in high:
        return f"≤ {high['value']} {unit}".strip()
    if "value" in low:
        return f"≥ {low['value']} {unit}".strip()
    return ""


def summarize(resource) -> dict:
    """``title``, ``when``, ``who``, free-text ``lines`` and, for lab reports, result ``rows``
    (name, value, reference range, flag). Whatever shape a stored entry has, a page shows
    it: a malformed one becomes a bare title rather than an error."""
    kind = resource.get("resourceType", "Resource") if isinstance(resource, dict) else "Resource"
    try:
        return _summarize(resource)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        return {"kind": kind, "title": str(kind), "when": "", "who": "", "lines": [], "rows": []}


def _summarize(resource: dict) -> dict:
    kind = resource.get("resourceType", "Resource")
    summary = {"kind": kind, "title": kind, "when": "", "who": "", "lines": [], "rows": []}
    lines = summary["lines"]
    if kind == "Condition":
        summary.update(title=_text(resource.get("code")), when=resource.get("recordedDate", ""))
        summary["who"] = _who(resource.get("asserter"))
        lines.append(f"Status: {_text(resource.get('clinicalStatus'))}")
    elif kind == "Procedure":
        summary.update(
            title=_text(resource.get("code")), when=resource.get("performedDateTime", "")
        )
        performers = resource.get("performer") or [{}]
        summary["who"] = _who(performers[0].get("actor"))
        if resource.get("outcome"):
            lines.append(f"Outcome: {_text(resource['outcome'])}")
    elif kind == "DocumentReference":
        content = (resource.get("content") or [{}])[0].get("attachment", {})
        summary.update(title=content.get("title") or _text(resource.get("type")))
        summary["when"] = resource.get("date", "")
        summary["who"] = _who((resource.get("author") or [{}])[0])
        lines.append(resource.get("description", ""))
    elif kind == "DiagnosticReport":
        summary.update(title=_text(resource.get("code")))
        summary["when"] = resource.get("effectiveDateTime", "")
        summary["who"] = _who((resource.get("performer") or [{}])[0])
        for obs in resource.get("contained", []):
            if isinstance(obs, dict) and obs.get("resourceType") == "Observation":
                flag = _text((obs.get("interpretation") or [{}])[0])
                summary["rows"].append(
                    (
                        _text(obs.get("code")),
                        _quantity(obs.get("valueQuantity")),
                        _range(obs.get("referenceRange")),
                        flag,
                    )
                )
        if resource.get("conclusion"):
            lines.append(resource["conclusion"])
    elif kind == "MedicationRequest":
        summary.update(title=_text(resource.get("medicationCodeableConcept")))
        summary["when"] = resource.get("authoredOn", "")
        summary["who"] = _who(resource.get("requester"))
        lines.append(f"Status: {resource.get('status', '')}")
        for dosage in resource.get("dosageInstruction", []):
            if isinstance(dosage, dict) and dosage.get("text"):
                lines.append(dosage["text"])
    for note in resource.get("note", []):
        if isinstance(note, dict) and note.get("text"):
            lines.append(note["text"])
    summary["title"] = summary["title"] or kind
    summary["when"] = str(summary["when"])[:10]  # the day is what a reader scans for
    summary["lines"] = [str(line) for line in lines if line]
    return summary
