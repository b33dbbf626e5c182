"""The demo's accounts and clients (DESIGN.md). Idempotent: running it twice changes nothing."""

import os

from sqlalchemy import select
from sqlalchemy.orm import Session

from .discovery import UMA_TICKET_GRANT
from .models import Client, Group, User

# Demo only: every password equals the username (README says so, in bold).
DEMO_PEOPLE = [
    ("alice", "Alice Patient", "alice@patients.example", []),
    ("bob", "Dr. Bob Surgeon", "bob@surgery.example", ["surgery-center"]),
    ("carol", "Dr. Carol Physician", "carol@clinic.example", []),
    ("dave", "Dave Nurse", "dave@surgery.example", ["surgery-center"]),
    ("erin", "Erin Operations", "erin@surgery.example", ["surgery-center"]),
    ("mallory", "Mallory Stranger", "mallory@elsewhere.example", []),
]


def demo_clients(environ=os.environ) -> list[dict]:
    """The EHR (a resource server) and the doctor app (a UMA client), as the demo runs them."""
    ehr = environ.get("EHR_URL", "http://localhost:8401").rstrip("/")
    doctor = environ.get("DOCTOR_URL", "http://localhost:8402").rstrip("/")
    return [
        {
            "client_id": environ.get("AS_DEMO_EHR_CLIENT_ID", "ehr"),
            "secret": environ.get("AS_DEMO_EHR_SECRET", "ehr-demo-secret"),
            "metadata": {
                "client_name": "Alice's EHR",
                "redirect_uris": [f"{ehr}/auth/callback", f"{ehr}/protect/callback"],
                "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
                "response_types": ["code"],
                "scope": "openid profile email uma_protection",
                "token_endpoint_auth_method": "client_secret_basic",
            },
        },
        {
            "client_id": environ.get("AS_DEMO_DOCTOR_CLIENT_ID", "doctor-app"),
            "secret": environ.get("AS_DEMO_DOCTOR_SECRET", "doctor-demo-secret"),
            "metadata": {
                "client_name": "Doctor app",
                "redirect_uris": [f"{doctor}/auth/callback"],
                "claims_redirect_uris": [f"{doctor}/uma/claims-callback"],
                "grant_types": ["authorization_code", "refresh_token", UMA_TICKET_GRANT],
                "response_types": ["code"],
                "scope": "openid profile email",
                "token_endpoint_auth_method": "client_secret_basic",
            },
        },
    ]


def ensure_group(session: Session, name: str) -> Group:
    group = session.scalar(select(Group).where(Group.name == name))
    if group is None:
        group = Group(name=name)
        session.add(group)
    return group


def ensure_person(
    session: Session, username, full_name, email, groups, password_method="scrypt"
) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        user = User(username=username, full_name=full_name, email=email, email_verified=True)
        user.set_password(username, password_method)
        session.add(user)
    user.groups = [ensure_group(session, g) for g in groups]
    return user


def ensure_client(session: Session, client_id: str, secret: str | None, metadata: dict) -> Client:
    client = session.scalar(select(Client).where(Client.client_id == client_id))
    if client is None:
        client = Client(client_id=client_id)
        session.add(client)
    client.set_secret(secret)
    client.set_client_metadata(metadata)
    return client


def seed_demo(session: Session, password_method: str = "scrypt") -> None:
    """``password_method`` is a werkzeug hash method; tests pass a cheap one for speed."""
    for username, full_name, email, groups in DEMO_PEOPLE:
        ensure_person(session, username, full_name, email, groups, password_method)
    for spec in demo_clients():
        ensure_client(session, spec["client_id"], spec["secret"], spec["metadata"])
    session.commit()
