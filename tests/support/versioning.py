"""One agency's adapter on a real outbox with a clock a test moves, and police exports
written row by row: what the version and retention tests drive."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from adapters.outbox import Outbox
from adapters.pipeline import Adapter, RunSummary
from adapters.profile import load_profile
from adapters.sources.delimited import CsvSource
from adapters.versions import EPOCH, SnapshotCheck
from hub.codec import Codec
from hub.models import CaseEvent
from hub.pseudonymise import KeyRing, Pseudonymiser

RING = KeyRing.generate("k1")
POLICE = [
    "Occurrence Number",
    "Occurrence Type",
    "Date Reported",
    "Nominal ID",
    "Surname",
    "Forename 1",
    "DOB",
    "Sex",
    "Involvement",
    "Offence",
    "Online Flag",
]


def police_row(occ: str, person: str, name: str, offence: str = "Harassment") -> list[str]:
    given, family = name.split()
    return [occ, "Crime", "03/02/2026", person, family, given, "04/05/2012", "F", "Victim",
            offence, "Y"]  # fmt: skip


def write(path: Path, header: list[str], rows: list[list[str]], delimiter: str = ",") -> Path:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter)
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


class Agency:
    """One agency's adapter on a real outbox, with a clock the test moves."""

    def __init__(self, profile: str, outbox: Path, limit: float = 0.2) -> None:
        self.profile = load_profile(profile)
        self.outbox = Outbox(outbox)
        self.now = EPOCH + 1_000_000.0
        self.adapter = Adapter(
            self.profile,
            "cases.test",
            Pseudonymiser(RING),
            self.outbox,
            snapshot_check=SnapshotCheck(limit),
        )
        self.adapter.versioner.clock = lambda: self.now

    def run(self, path: Path, accept: bool = False) -> RunSummary:
        self.now += 1
        return self.adapter.ingest(
            CsvSource(path, self.profile),
            snapshot=self.profile.export == "full",
            accept_withdrawals=accept,
        )

    def events(self) -> list[CaseEvent]:
        codec = Codec("case_event")
        held = self.outbox.pending()  # nothing is forwarded here: every event, in order
        return [CaseEvent.from_avro(codec.decode(item.value)) for item in held]


def changes(summary: RunSummary) -> tuple[int, int, int, int]:
    c = summary.changes
    return c["new"], c["corrected"], c["withdrawn"], c["unchanged"]
