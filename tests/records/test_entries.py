"""Entries as the EHR accepts them and shows them, without HTTP."""

import json

import pytest

from health_fhir import summarize
from records_server.demo_records import demo_entries
from records_server.entries import InvalidEntry, parse_entry
from records_server.models import Patient, RecordSet


@pytest.fixture
def history():
    return RecordSet(name="history", patient=Patient(username="alice", full_name="Alice"))


@pytest.mark.parametrize(
    "body, content_type",
    [
        (b"", "application/json"),
        (b"\xff\xfe", "application/json"),
        (b"null", "application/json"),
        (b'{"resourceType": "Observation"}', "application/json"),
        (b'{"resourceType": "Condition", "subject": "Patient/alice"}', "application/json"),
        (b'{"resourceType": "Condition"}', "application/x-www-form-urlencoded"),
        (b'{"resourceType": "Condition"}', None),
        (b"[" * 50_000 + b"]" * 50_000, "application/json"),
        (b'{"resourceType": "Condition", "onsetAge": NaN}', "application/json"),
        (b'{"resourceType": "Condition", "x": Infinity}', "application/json"),
        (
            b'{"resourceType": "Condition", "patient": {"reference": "Patient/x"}}',
            "application/json",
        ),
    ],
)
def test_bad_entries_are_refused_with_a_reason(history, body, content_type):
    with pytest.raises(InvalidEntry) as refused:
        parse_entry(body, content_type, history)
    assert str(refused.value)


def test_a_good_entry_passes_with_or_without_subject(history):
    for extra in ({}, {"subject": {"reference": "Patient/alice"}}):
        body = json.dumps({"resourceType": "Condition", **extra}).encode()
        assert parse_entry(body, "application/fhir+json; charset=utf-8", history)["resourceType"]


def test_every_demo_entry_has_a_readable_summary():
    for entries in demo_entries().values():
        for resource in entries:
            summary = summarize(resource)
            assert summary["title"] and summary["title"] != resource["resourceType"], resource["id"]
            assert summary["when"], resource["id"]


def test_lab_reports_show_their_results():
    report = demo_entries()["labs"][0]
    rows = summarize(report)["rows"]
    assert len(rows) == len(report["contained"])
    assert all(value and reference for _, value, reference, _ in rows)


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "Condition", "note": 5},
        {"resourceType": "Procedure", "performer": [1]},
        {"resourceType": "DocumentReference", "content": "x"},
        {"resourceType": "MedicationRequest", "dosageInstruction": "twice"},
        {
            "resourceType": "DiagnosticReport",
            "contained": [{"resourceType": "Observation", "code": 1}],
        },
        "not even an object",
    ],
)
def test_any_stored_shape_summarizes_without_an_error(resource):
    """A writer with `write` must not be able to break the pages that show the record."""
    summary = summarize(resource)
    assert summary["title"]


def test_unknown_and_malformed_resources_still_summarize():
    assert summarize({"resourceType": "Basic"})["title"] == "Basic"
    assert summarize({"resourceType": "DiagnosticReport", "contained": ["x", 3]})["rows"] == []
    assert summarize({"resourceType": "Condition", "code": "not a concept"})["title"] == "Condition"
