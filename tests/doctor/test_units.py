"""The doctor app's plain parts, without HTTP: the UMA challenge parser and the chart."""

from datetime import UTC, datetime

import pytest
from flask import Flask, Response, jsonify, request

from doctor_client.chart import readings_from, render
from doctor_client.uma import SAME_TICKET, Failed, Tokens, UmaClient, Waiting, parse_challenge
from tests.conftest import LiveServer, free_port


@pytest.mark.parametrize(
    "header, expected",
    [
        ('UMA realm="r", as_uri="https://as.example", ticket="t1"', ("https://as.example", "t1")),
        ('uma as_uri="https://as.example/", ticket="t1"', ("https://as.example", "t1")),
        ('Bearer realm="r"', None),
        ('UMA realm="r", ticket="t1"', None),  # RS-2 needs both as_uri and ticket
        ("", None),
        (None, None),
    ],
)
def test_parse_challenge(header, expected):
    challenge = parse_challenge(header)
    assert (challenge and (challenge.as_uri, challenge.ticket)) == expected


def observation(when: str, systolic=120, diastolic=80, pulse=70) -> dict:
    component = [
        {"code": {"coding": [{"code": code}]}, "valueQuantity": {"value": value}}
        for code, value in (("8480-6", systolic), ("8462-4", diastolic), ("8867-4", pulse))
    ]
    return {"resource": {"effectiveDateTime": when, "component": component}}


def test_chart_points_come_oldest_first_and_skip_what_is_malformed():
    bundle = {
        "entry": [
            observation("2026-11-23T10:00:00Z", 130),
            observation("2026-11-23T09:00:00Z", 125),
            {"resource": {"effectiveDateTime": "soon", "component": []}},
            {"resource": "x"},
            observation("2026-11-23T11:00:00Z", systolic="high"),
        ]
    }
    points = readings_from(bundle)
    assert [p[1] for p in points] == [125, 130]
    assert points[0][0] == datetime(2026, 11, 23, 9, tzinfo=UTC)
    assert readings_from({"entry": "nope"}) == [] and readings_from([]) == []


def test_the_chart_is_an_svg_with_three_lines():
    svg = render(readings_from({"entry": [observation("2026-11-23T09:00:00Z")] * 2}))
    assert svg.startswith("<svg") and svg.count("<polyline") == 3
    assert render([]).count("<polyline") == 0


def answered_by(app: Flask, ask):
    """``ask(base_url)`` against ``app`` served on a free loopback port: another app faked
    at the HTTP boundary."""
    server = LiveServer(app, free_port()).start()
    try:
        return ask(server.url)
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"error": "as_unreachable", "error_description": "The AS no longer knows 'history'."},
            "The EHR could not get a permission ticket: The AS no longer knows 'history'.",
        ),
        ("<html>busy</html>", "The EHR cannot reach the authorization server right now."),
        ({"error_description": 42}, "The EHR cannot reach the authorization server right now."),
    ],
)
def test_a_403_with_the_rs3_warning_passes_on_the_ehrs_reason(body, expected):
    """RS-3: the EHR's 403 + Warning ends the dance; the person reads the EHR's reason when
    it gives one."""
    ehr = Flask("fake-ehr")

    @ehr.get("/records")
    def records():
        response = jsonify(body) if isinstance(body, dict) else Response(body, mimetype="text/html")
        response.status_code = 403
        response.headers["Warning"] = '199 - "UMA Authorization Server Unreachable"'
        return response

    client = UmaClient("doctor", "secret")
    outcome = answered_by(ehr, lambda url: client.call("GET", url + "/records", Tokens()))
    assert outcome == Failed(expected)


@pytest.mark.parametrize(
    ("error", "fresh", "expected"),
    [
        ("need_info", False, Failed(SAME_TICKET)),
        ("request_submitted", False, Failed(SAME_TICKET)),
        ("request_submitted", True, "waiting"),
    ],
)
def test_a_ticket_handed_back_unchanged_is_refused(error, fresh, expected):
    """TKT-4 (C, SHOULD): the client checks that the ticket in need_info or request_submitted
    differs from the one it presented (the fake AS breaks TKT-4 unless ``fresh``)."""
    fake_as = Flask("fake-as")

    @fake_as.get("/.well-known/uma2-configuration")
    def discovery():
        base = request.host_url.rstrip("/")
        return jsonify(issuer=base, token_endpoint=base + "/token")

    @fake_as.post("/token")
    def token():
        presented = request.form["ticket"]
        ticket = presented + "-new" if fresh else presented
        if error == "need_info":
            claims = request.host_url + "rqp/claims"
            return jsonify(error=error, ticket=ticket, redirect_user=claims), 403
        return jsonify(error=error, ticket=ticket, interval=5), 403

    def redeem(url):
        client = UmaClient("doctor", "secret", trusted=frozenset({url}))
        return client.redeem(url, "ticket-1", Tokens())

    outcome = answered_by(fake_as, redeem)
    if expected == "waiting":
        assert isinstance(outcome, Waiting) and outcome.ticket == "ticket-1-new"
    else:
        assert outcome == expected
