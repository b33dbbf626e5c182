"""Alice's demo health records (right knee replacement story) as FHIR R4-shaped dicts."""

import json
from html import escape

SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
TERMINOLOGY = "http://terminology.hl7.org/CodeSystem"

CAROL = {"display": "Dr. Carol (regular physician)"}
BOB = {"display": "Dr. Bob (surgeon, Surgery Center)"}


def _concept(system: str, code: str, display: str, text: str | None = None) -> dict:
    return {
        "coding": [{"system": system, "code": code, "display": display}],
        "text": text or display,
    }


def _narrative(text: str) -> dict:
    return {
        "status": "generated",
        "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{escape(text)}</p></div>',
    }


def _condition(rid, subject, snomed, icd10, text, recorded, asserter, note) -> dict:
    code = _concept(SNOMED, *snomed, text=text)
    code["coding"].append({"system": ICD10, "code": icd10[0], "display": icd10[1]})
    return {
        "resourceType": "Condition",
        "id": rid,
        "clinicalStatus": _concept(f"{TERMINOLOGY}/condition-clinical", "active", "Active"),
        "verificationStatus": _concept(
            f"{TERMINOLOGY}/condition-ver-status", "confirmed", "Confirmed"
        ),
        "category": [
            _concept(f"{TERMINOLOGY}/condition-category", "problem-list-item", "Problem List Item")
        ],
        "code": code,
        "subject": subject,
        "recordedDate": recorded,
        "asserter": asserter,
        "note": [{"text": note}],
    }


def _note(rid, subject, loinc, when, author, title, text) -> dict:
    return {
        "resourceType": "DocumentReference",
        "id": rid,
        "status": "current",
        "docStatus": "final",
        "type": _concept(LOINC, *loinc),
        "category": [{"text": "Clinical note"}],
        "subject": subject,
        "date": when,
        "author": [author],
        "description": text,
        "content": [{"attachment": {"contentType": "text/plain", "title": title}}],
        "text": _narrative(text),
    }


def _obs(oid, loinc, value, unit, low=None, high=None) -> dict:
    """One contained laboratory Observation, flagged H, L or N against its reference range."""
    rng = {}
    if low is not None:
        rng["low"] = {"value": low, "unit": unit, "system": UCUM, "code": unit}
    if high is not None:
        rng["high"] = {"value": high, "unit": unit, "system": UCUM, "code": unit}
    flags = {"H": "High", "L": "Low", "N": "Normal"}
    flag = "H" if high is not None and value > high else "N"
    flag = "L" if low is not None and value < low else flag
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [_concept(f"{TERMINOLOGY}/observation-category", "laboratory", "Laboratory")],
        "code": _concept(LOINC, *loinc),
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
        "interpretation": [
            _concept(f"{TERMINOLOGY}/v3-ObservationInterpretation", flag, flags[flag])
        ],
        "referenceRange": [rng],
    }


def _report(rid, subject, section, panel, when, issued, performer, results, conclusion) -> dict:
    sections = {"HM": "Hematology", "CH": "Chemistry"}
    contained = []
    for obs in results:
        obs["subject"] = subject
        obs["effectiveDateTime"] = when
        contained.append(obs)
    return {
        "resourceType": "DiagnosticReport",
        "id": rid,
        "contained": contained,
        "status": "final",
        "category": [_concept(f"{TERMINOLOGY}/v2-0074", section, sections[section])],
        "code": _concept(LOINC, *panel),
        "subject": subject,
        "effectiveDateTime": when,
        "issued": issued,
        "performer": [performer],
        "result": [{"reference": f"#{o['id']}", "display": o["code"]["text"]} for o in contained],
        "conclusion": conclusion,
    }


def _prescription(rid, subject, status, med, authored, requester, dosage, reason) -> dict:
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": med,
        "subject": subject,
        "authoredOn": authored,
        "requester": requester,
        "reasonCode": [{"text": reason}],
        "dosageInstruction": [{"text": dosage}],
    }


def _history(subject: dict) -> list[dict]:
    return [
        _condition(
            "hist-1",
            subject,
            ("59621000", "Essential hypertension"),
            ("I10", "Essential (primary) hypertension"),
            "Essential hypertension",
            "2026-01-14",
            CAROL,
            "Home readings around 145/92 mm[Hg]; lisinopril started.",
        ),
        _condition(
            "hist-2",
            subject,
            ("239873007", "Osteoarthritis of knee"),
            ("M17.11", "Unilateral primary osteoarthritis, right knee"),
            "Primary osteoarthritis of the right knee",
            "2026-02-20",
            CAROL,
            "X-ray: severe medial joint-space narrowing and osteophytes (Kellgren-Lawrence 4).",
        ),
        {
            "resourceType": "Procedure",
            "id": "hist-3",
            "status": "completed",
            "code": {"text": "Intra-articular corticosteroid injection, right knee"},
            "subject": subject,
            "performedDateTime": "2026-03-18",
            "performer": [{"actor": CAROL}],
            "reasonReference": [{"reference": "Condition/hist-2", "display": "Osteoarthritis"}],
            "bodySite": [{"text": "Right knee"}],
            "outcome": {"text": "Relief for about six weeks, then pain returned."},
        },
        _note(
            "hist-4",
            subject,
            ("11506-3", "Progress note"),
            "2026-06-10T10:30:00Z",
            CAROL,
            "Follow-up: hypertension and right knee pain",
            "BP 132/84 on lisinopril 10 mg, well tolerated. Right knee pain now limits walking "
            "to 200 m despite the March injection, meloxicam and physiotherapy. Referred to "
            "Dr. Bob at the Surgery Center to discuss total knee replacement.",
        ),
        _note(
            "hist-5",
            subject,
            ("11488-4", "Consult note"),
            "2026-11-09T15:00:00Z",
            CAROL,
            "Pre-operative assessment for right total knee replacement",
            "Fit for elective right total knee arthroplasty with Dr. Bob. BP controlled "
            "(128/80). Mild anaemia (Hb 11.8 g/dL) and fasting glucose 104 mg/dL: no action "
            "needed before surgery. "
            "Meloxicam stopped 7 days before surgery; continue lisinopril, omit the morning "
            "dose on the day of surgery. Please monitor BP at home after discharge.",
        ),
    ]


# (LOINC code, LOINC display, value, UCUM unit, reference low, reference high)
CBC = [
    ("6690-2", "Leukocytes [#/volume] in Blood", 6.8, "10*3/uL", 4.5, 11.0),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", 11.8, "g/dL", 12.0, 15.5),
    ("4544-3", "Hematocrit [Volume Fraction] of Blood", 36.1, "%", 36.0, 46.0),
    ("777-3", "Platelets [#/volume] in Blood", 245, "10*3/uL", 150, 400),
]
BMP = [
    ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", 104, "mg/dL", 70, 99),
    ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", 139, "mmol/L", 136, 145),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", 4.6, "mmol/L", 3.5, 5.1),
    ("3094-0", "Urea nitrogen [Mass/volume] in Serum or Plasma", 16, "mg/dL", 7, 20),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", 0.9, "mg/dL", 0.59, 1.04),
]
LIPIDS = [
    ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", 212, "mg/dL", None, 199),
    ("2571-8", "Triglyceride [Mass/volume] in Serum or Plasma", 138, "mg/dL", None, 149),
    ("2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma", 54, "mg/dL", 40, None),
    (
        "13457-7",
        "Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation",
        130,
        "mg/dL",
        None,
        129,
    ),
]


def _results(prefix: str, rows: list[tuple]) -> list[dict]:
    return [
        _obs(f"{prefix}-{i}", (code, name), *rest)
        for i, (code, name, *rest) in enumerate(rows, start=1)
    ]


def _labs(subject: dict) -> list[dict]:
    lab = {"display": "Surgery Center Laboratory"}
    return [
        _report(
            "lab-1",
            subject,
            "HM",
            ("58410-2", "CBC panel - Blood by Automated count"),
            "2026-11-05T08:10:00Z",
            "2026-11-05T11:42:00Z",
            lab,
            _results("cbc", CBC),
            "Mild anaemia (Hb 11.8 g/dL); otherwise normal. Acceptable for surgery.",
        ),
        _report(
            "lab-2",
            subject,
            "CH",
            ("51990-0", "Basic metabolic panel - Blood"),
            "2026-11-05T08:10:00Z",
            "2026-11-05T12:05:00Z",
            lab,
            _results("bmp", BMP),
            "Fasting glucose mildly raised; electrolytes and renal function normal.",
        ),
        _report(
            "lab-3",
            subject,
            "CH",
            ("24331-1", "Lipid panel - Serum or Plasma"),
            "2026-06-08T07:45:00Z",
            "2026-06-08T13:20:00Z",
            {"display": "Clinic Laboratory"},
            _results("lip", LIPIDS),
            "Borderline high total and LDL cholesterol; diet advice given, recheck in 6 months.",
        ),
    ]


def _prescriptions(subject: dict) -> list[dict]:
    return [
        _prescription(
            "rx-1",
            subject,
            "active",
            _concept(RXNORM, "314076", "lisinopril 10 MG Oral Tablet"),
            "2026-01-14",
            CAROL,
            "Take 1 tablet (10 mg) by mouth once daily in the morning.",
            "Essential hypertension",
        ),
        _prescription(
            "rx-2",
            subject,
            "active",
            _concept(RXNORM, "198440", "acetaminophen 500 MG Oral Tablet"),
            "2026-03-18",
            CAROL,
            "Take 1-2 tablets (500-1000 mg) every 6 hours as needed for knee pain; "
            "no more than 3 g a day.",
            "Osteoarthritis of the right knee",
        ),
        _prescription(
            "rx-3",
            subject,
            "completed",
            {"text": "Meloxicam 15 mg oral tablet"},
            "2026-04-22",
            CAROL,
            "Take 1 tablet (15 mg) by mouth once daily with food. Stop 7 days before surgery.",
            "Osteoarthritis of the right knee",
        ),
        _prescription(
            "rx-4",
            subject,
            "active",
            {"text": "Chlorhexidine gluconate 4% skin cleanser"},
            "2026-11-12",
            BOB,
            "Wash from the neck down the evening before and the morning of surgery; "
            "do not use on the face.",
            "Pre-operative skin preparation for right total knee replacement",
        ),
    ]


def demo_entries(patient: str = "alice") -> dict[str, list[dict]]:
    """Record set name -> list of FHIR R4 resources for the demo patient."""
    subject = {"reference": f"Patient/{patient}", "display": f"{patient.capitalize()} Patient"}
    sets = {
        "history": _history(subject),
        "labs": _labs(subject),
        "prescriptions": _prescriptions(subject),
    }
    return json.loads(json.dumps(sets))  # JSON-clean, and no dict shared, so callers may mutate
