"""An agency's case-management database, as the SQL-source tests drive it."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import column, create_engine, insert, table, text
from sqlalchemy.pool import NullPool

SCHEMA = """
CREATE TABLE cs_cases (
    case_row         serial PRIMARY KEY,
    record_id        text NOT NULL,
    record_version   integer NOT NULL,
    event_type       text,
    occurred_on      date,
    nhs_number       text,
    family_name      text,
    given_name       text,
    date_of_birth    date,
    sex              text,
    postcode         text,
    online_component text,
    risk_codes       text[],
    outcome          text,
    worker_notes     text,
    updated_at       timestamptz
);
CREATE VIEW cs_case_events AS
    SELECT record_id, record_version, event_type, occurred_on, nhs_number, family_name,
           given_name, date_of_birth, sex, postcode, online_component, risk_codes, outcome,
           updated_at
    FROM cs_cases;
"""

GOOD: dict[str, Any] = {
    "record_id": "CS-1",
    "record_version": 1,
    "event_type": "referral",
    "occurred_on": date(2026, 9, 14),
    "nhs_number": "943 476 5919",
    "family_name": "Nowak",
    "given_name": "Zara",
    "date_of_birth": date(2013, 5, 2),
    "sex": "F",
    "postcode": "DY1 4RT",
    "online_component": "yes",
    "risk_codes": ["grooming", "SEXTORTION"],
    "outcome": "police referral",
    "worker_notes": "free text that never leaves the agency",
    "updated_at": "2026-09-14 10:00:00.123456+00",
}


class Database:
    """The agency's database, as a test drives it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url, poolclass=NullPool)

    def execute(self, sql: str, rows: list[dict[str, Any]] | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(sql), rows or [{}])

    def insert(self, *rows: dict[str, Any]) -> None:
        cases = table("cs_cases", *(column(name) for name in GOOD))
        with self.engine.begin() as conn:
            conn.execute(insert(cases), [GOOD | row for row in rows])
