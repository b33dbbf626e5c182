"""The EHR's demo records are well-formed FHIR R4-shaped resources."""

import re

import pytest

from records_server.demo_records import demo_entries
from records_server.record_kinds import KINDS as RECORD_SET_KINDS


def _all(patient="alice"):
    return [res for entries in demo_entries(patient).values() for res in entries]


def test_every_record_set_is_described_and_non_empty():
    entries = demo_entries()
    assert set(entries) == {"history", "labs", "prescriptions"} < set(RECORD_SET_KINDS)
    for name, resources in entries.items():
        assert resources, name
        kind = RECORD_SET_KINDS[name]
        assert kind["title"] and kind["description"]
        assert {r["resourceType"] for r in resources} <= set(kind["fhir_types"])


def test_every_entry_has_type_id_and_subject():
    for res in _all():
        assert res["resourceType"] and res["id"]
        assert res["subject"] == {"reference": "Patient/alice", "display": "Alice Patient"}


def test_ids_are_unique():
    ids = [res["id"] for res in _all()]
    assert len(ids) == len(set(ids))


def test_dates_are_2026_before_the_demo_day():
    dates = re.findall(r'"(\d{4}-\d{2}-\d{2})', repr(_all()).replace("'", '"'))
    assert dates
    assert all("2026-01-01" <= d < "2026-11-23" for d in dates)


@pytest.mark.parametrize("report", demo_entries()["labs"], ids=lambda r: r["id"])
def test_lab_reports_have_valued_observations_with_ranges(report):
    assert report["resourceType"] == "DiagnosticReport"
    contained = {obs["id"]: obs for obs in report["contained"]}
    assert [ref["reference"] for ref in report["result"]] == [f"#{i}" for i in contained]
    for obs in contained.values():
        assert obs["resourceType"] == "Observation"
        assert obs["code"]["coding"][0]["system"] == "http://loinc.org"
        qty = obs["valueQuantity"]
        assert (
            isinstance(qty["value"], int | float) and qty["system"] == "http://unitsofmeasure.org"
        )
        rng = obs["referenceRange"][0]
        assert "low" in rng or "high" in rng
        flag = obs["interpretation"][0]["coding"][0]["code"]
        assert flag in {"H", "L", "N"}
    flags = [o["interpretation"][0]["coding"][0]["code"] for o in contained.values()]
    assert flags  # at least one result per report


def test_some_lab_results_are_out_of_range():
    flags = [
        obs["interpretation"][0]["coding"][0]["code"]
        for report in demo_entries()["labs"]
        for obs in report["contained"]
    ]
    assert {"H", "L"} & set(flags) and "N" in flags


def test_another_patient_gets_their_own_subject():
    for res in _all("zoe"):
        assert res["subject"]["reference"] == "Patient/zoe"
        for obs in res.get("contained", []):
            assert obs["subject"]["reference"] == "Patient/zoe"


def test_each_call_returns_fresh_dicts():
    first = demo_entries()
    first["history"][0]["subject"]["reference"] = "Patient/mallory"
    assert demo_entries()["history"][0]["subject"]["reference"] == "Patient/alice"
    assert first["history"][1]["subject"]["reference"] == "Patient/alice"
