"""The kinds of record set this EHR keeps: their titles and the FHIR resources each holds."""

# Each kind is one UMA resource type (TYPE_BASE + kind) with the scopes read and write.
TYPE_BASE = "https://uma-health.example/rsrc/record-set/"
SCOPES = ["read", "write"]

KINDS: dict[str, dict] = {
    "history": {
        "title": "Medical history",
        "description": "Diagnoses, past procedures and clinical notes.",
        "fhir_types": ["Condition", "Procedure", "DocumentReference"],
    },
    "labs": {
        "title": "Lab results",
        "description": "Laboratory reports with their individual results and reference ranges.",
        "fhir_types": ["DiagnosticReport", "Observation"],
    },
    "prescriptions": {
        "title": "Prescriptions",
        "description": "Medications prescribed, current and past, with dosage instructions.",
        "fhir_types": ["MedicationRequest"],
    },
    "immunizations": {
        "title": "Immunizations",
        "description": "Vaccines given, with dates and lot numbers.",
        "fhir_types": ["Immunization"],
    },
    "allergies": {
        "title": "Allergies and intolerances",
        "description": "Substances to avoid and the reactions they cause.",
        "fhir_types": ["AllergyIntolerance"],
    },
}
