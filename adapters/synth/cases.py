"""Synthetic exports in the generic CSV layout, for the demo and the tests.

Children come from one seeded pool shared by every agency, so the same child
turns up in several agencies' files (some known by NHS number, some only by
name and date of birth). Files carry what real exports carry: replayed rows,
corrected records (a higher record_version), and a few bad rows that the
adapter must reject. All people are invented; NHS numbers are in the 999
range that is never issued.

`synth_rows` and `write_csv` write the hub's generic layout. `write_export`
writes a file in one agency's own shape (its mapping profile's headers,
vocabulary, date formats, encoding and format) and returns, row by row, what
the mapper should make of it, so tests can check every field.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from hub.taxonomy import STARTER_CODES

COLUMNS = (
    "record_id",
    "record_version",
    "event_type",
    "occurred_on",
    "nhs_number",
    "family_name",
    "given_name",
    "date_of_birth",
    "sex",
    "postcode",
    "online_component",
    "risk_codes",
    "outcome",
)
FAMILY = (
    "Smith",
    "Jones",
    "Patel",
    "O'Brien",
    "Nowak",
    "Begum",
    "Williams",
    "Khan",
    "Evans",
    "Taylor",
    "Brown",
    "Davies",
    "Wilson",
    "Ahmed",
    "Hughes",
    "Ward",
)
GIVEN = (
    "Amelia",
    "Oliver",
    "Isla",
    "Noah",
    "Ava",
    "Leo",
    "Mia",
    "Zara",
    "Jack",
    "Aisha",
    "Freya",
    "Harry",
    "Maya",
    "Ruby",
    "Theo",
    "Yusuf",
)
DISTRICTS = ("DY1", "DY2", "DY3", "DY5", "DY8", "B62", "B63", "WV14")
EVENT_TYPES = ("REFERRAL", "ASSESSMENT", "INCIDENT", "CONTACT")
OUTCOMES = (
    "NO_FURTHER_ACTION",
    "ADVICE_GIVEN",
    "EARLY_HELP",
    "SOCIAL_CARE_REFERRAL",
    "POLICE_REFERRAL",
    "CAMHS_REFERRAL",
    "ONGOING",
)
# Rough weights: cyberbullying, unwanted contact and image sharing are the commonest.
RISK_WEIGHTS = {code: 1 for code in STARTER_CODES} | {
    "CYBERBULLYING": 8,
    "UNWANTED_STRANGER_CONTACT": 7,
    "NUDE_IMAGE_SHARING_U18": 6,
    "GROOMING": 4,
    "ONLINE_HARASSMENT": 4,
    "SELF_HARM_CONTENT": 3,
}


@dataclass(frozen=True)
class Child:
    nhs_number: str
    family_name: str
    given_name: str
    born: date
    sex: str
    postcode: str


def nhs_number(rng: random.Random) -> str:
    """A valid (mod-11) NHS number in the never-issued 999 range."""
    while True:
        digits = [9, 9, 9] + [rng.randrange(10) for _ in range(6)]
        check = 11 - sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        check = 0 if check == 11 else check
        if check != 10:
            return "".join(map(str, digits)) + str(check)


def child_pool(size: int, seed: int = 7) -> list[Child]:
    rng = random.Random(seed)
    pool = []
    for _ in range(size):
        born = date(2008, 1, 1) + timedelta(days=rng.randrange(16 * 365))
        inward = f"{rng.randrange(10)}{rng.choice('ABDEFGHJ')}{rng.choice('LNPQRSTU')}"
        postcode = f"{rng.choice(DISTRICTS)} {inward}"
        pool.append(
            Child(
                nhs_number(rng),
                rng.choice(FAMILY),
                rng.choice(GIVEN),
                born,
                rng.choice("FM"),
                postcode,
            )
        )
    return pool


def synth_rows(
    agency: str, rows: int, seed: int, pool: list[Child], until: date | None = None
) -> list[dict[str, str]]:
    """`rows` data rows for `agency`, including replays, corrections and a few bad rows.

    Events fall in the 300 days from 1 January 2026, or the 300 days up to `until`.
    """
    rng = random.Random(f"{agency}:{seed}")
    codes, weights = zip(*RISK_WEIGHTS.items(), strict=True)
    out: list[dict[str, str]] = []
    while len(out) < rows:
        roll = rng.random()
        if out and roll < 0.05:  # a replayed row, byte for byte
            out.append(dict(rng.choice(out)))
            continue
        if out and roll < 0.065:  # a withdrawal of an earlier record
            withdrawn = dict(rng.choice(out))
            withdrawn["record_version"] = str(int(withdrawn["record_version"] or 1) + 1)
            withdrawn["event_type"] = "WITHDRAWN"
            out.append(withdrawn)
            continue
        if out and roll < 0.08:  # a correction of an earlier record
            corrected = dict(rng.choice(out))
            corrected["record_version"] = str(int(corrected["record_version"] or 1) + 1)
            corrected["outcome"] = rng.choice(OUTCOMES)
            out.append(corrected)
            continue
        child = rng.choice(pool)
        days = rng.randrange(300)
        occurred = until - timedelta(days=days) if until else date(2026, 1, 1) + timedelta(days)
        online = rng.choices(("yes", "no", ""), (70, 10, 20))[0]
        risks = (
            rng.sample(codes, k=rng.choice((1, 1, 1, 2)), counts=weights) if online == "yes" else []
        )
        row = {
            "record_id": f"{agency.upper()}-{seed}-{len(out):06d}",
            "record_version": "1",
            "event_type": rng.choice(EVENT_TYPES),
            "occurred_on": occurred.isoformat(),
            "nhs_number": child.nhs_number if rng.random() < 0.6 else "",
            "family_name": child.family_name,
            "given_name": child.given_name,
            "date_of_birth": child.born.isoformat() if child.born < occurred else "",
            "sex": child.sex,
            "postcode": child.postcode,
            "online_component": online,
            "risk_codes": ";".join(sorted(set(risks))),
            "outcome": rng.choice(OUTCOMES),
        }
        if roll > 0.98:  # a bad row: the adapter must reject it and carry on
            row[rng.choice(("nhs_number", "occurred_on", "risk_codes"))] = "NOT-VALID"
        out.append(row)
    return out


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


# --- exports in an agency's own shape ---------------------------------------------

#: Postcode district -> the town an anonymous service records as the user's area.
