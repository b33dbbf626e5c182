"""Plumbing the EHR and the doctor app share: the database engine and session per app, a UTC
datetime column, the session key kept in the database, the SQLite folder. No protocol and no
app logic lives here, so sharing it couples nothing that crosses the wire."""
