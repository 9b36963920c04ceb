"""The adapter, top to bottom: read -> map (validate, minimise, pseudonymise) -> encode -> publish.

A rejected row stays here: its file, row, field and reason go to the
quarantine report beside the run (``<quarantine>/<file>.rejects.csv``), and
the rest of the file carries on.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from adapters.csv_source import read_csv
from adapters.mapping import RowMapper
from adapters.publisher import KafkaPublisher, partition_key
from hub.codec import Codec
from hub.errors import RecordError
from hub.minimise import Minimiser
from hub.pseudonymise import Pseudonymiser


@dataclass
class RunSummary:
    source: str
    read: int = 0
    published: int = 0
    unlinked: int = 0
    rejected: list[RecordError] = field(default_factory=list)

    def line(self) -> str:
        reasons = Counter(f"{e.field}: {e.reason}" for e in self.rejected)
        detail = "; ".join(f"{n} x {r}" for r, n in reasons.most_common())
        rejected = (
            f", {len(self.rejected)} rejected ({detail})" if self.rejected else ", 0 rejected"
        )
        return (
            f"{self.source}: {self.read} rows read, {self.published} published{rejected},"
            f" {self.unlinked} with no linkable subject"
        )


class CsvAdapter:
    def __init__(
        self,
        agency: str,
        topic: str,
        pseudonymiser: Pseudonymiser,
        publisher: KafkaPublisher,
        quarantine: Path | None = None,
        minimiser: Minimiser | None = None,
    ) -> None:
        self.agency = agency
        self.topic = topic
        self.pseudonymiser = pseudonymiser
        self.publisher = publisher
        self.quarantine = quarantine
        self.minimiser = minimiser
        self.codec = Codec("case_event")

    def run(self, path: Path) -> RunSummary:
        summary = RunSummary(str(path))
        mapper = RowMapper(self.agency, self.pseudonymiser, str(path), self.minimiser)
        for item in read_csv(path):
            summary.read += 1
            if isinstance(item, RecordError):
                summary.rejected.append(item)
                continue
            row, cells = item
            try:
                event = mapper.map(row, cells)
            except RecordError as exc:
                summary.rejected.append(exc)
                continue
            summary.unlinked += event.subject is None
            self.publisher.send(
                self.topic, partition_key(event), self.codec.encode(event.to_avro())
            )
        summary.published = self.publisher.flush()
        self._write_quarantine(path, summary.rejected)
        return summary

    def _write_quarantine(self, path: Path, rejected: list[RecordError]) -> None:
        if self.quarantine is None or not rejected:
            return
        self.quarantine.mkdir(parents=True, exist_ok=True)
        with (self.quarantine / f"{path.name}.rejects.csv").open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["file", "row", "field", "reason"])
            for error in rejected:
                writer.writerow([error.source, error.row, error.field, error.reason])
