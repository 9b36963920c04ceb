"""Staged releases of two-person publications: what waits for approval, and what became
of it.

A publication with ``approval: two-person`` in the agreement is never released
by the process that computes it. The publisher (on its timetable, or an
operator's ``hub publish --now``) stages the release instead: its cells, as they
would be published, go to the staged-releases topic
(``partnership.releases.staged.v1``, compacted, one record per release id), in
one transaction with a ``STAGED`` entry on the audit trail. No reader of the
trends topic sees them. One of the agreement's approvers other than the
principal that staged it then publishes it (``hub release approve``) or
discards it (``hub release reject``): ``streams.publish.approval``.

A staged release's id is ``staged/<publication>/<period start>/r<revision>``:
the publisher stages a period's next revision under one id, and stages it again
(the same id, the latest record kept) only when its cells change.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Literal

from hub.disclosure import Suppression
from hub.errors import PublishError
from hub.kafka.client import TopicReader
from hub.kafka.security import principal
from hub.periods import Period
from hub.settings import HubSettings
from streams.aggregate import Cell

Status = Literal["STAGED", "APPROVED", "REJECTED"]


def staged_id(publication: str, period_start: date, revision: int) -> str:
    return f"staged/{publication}/{period_start.isoformat()}/r{revision}"


@dataclass(frozen=True)
class Staged:
    """One staged release, as it stands."""

    publication: str
    period: Period
    revision: int
    cells: tuple[Cell, ...]
    forced: bool
    reason: str | None
    staged_by: str  # the principal that staged it
    staged_account: str
    staged_at: datetime
    linked: int = 0  # cells hidden for what the trends topic held when staged
    withheld: tuple[tuple[str, str], ...] = ()
    status: Status = "STAGED"
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_reason: str | None = None
    #: The audit entry of the staging, then of the decision.
    audit_id: str = ""

    @property
    def id(self) -> str:
        return staged_id(self.publication, self.period[0], self.revision)

    @property
    def suppressed(self) -> int:
        return sum(1 for c in self.cells if c.suppressed)

    def decided(
        self, status: Status, by: str, at: datetime, reason: str | None, audit_id: str
    ) -> Staged:
        return replace(
            self,
            status=status,
            decided_by=by,
            decided_at=at,
            decision_reason=reason,
            audit_id=audit_id,
        )

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "id": self.id,
                "publication": self.publication,
                "period": [self.period[0].isoformat(), self.period[1].isoformat()],
                "revision": self.revision,
                "cells": [
                    [c.measure, c.dimension, c.value, c.count, c.suppressed, c.suppression.value]
                    for c in self.cells
                ],
                "forced": self.forced,
                "reason": self.reason,
                "staged_by": self.staged_by,
                "staged_account": self.staged_account,
                "staged_at": self.staged_at.astimezone(UTC).isoformat(),
                "linked": self.linked,
                "withheld": [list(pair) for pair in self.withheld],
                "status": self.status,
                "decided_by": self.decided_by,
                "decided_at": None if self.decided_at is None else self.decided_at.isoformat(),
                "decision_reason": self.decision_reason,
                "audit_id": self.audit_id,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Staged:
        d = json.loads(data)
        start, end = (date.fromisoformat(x) for x in d["period"])
        return cls(
            publication=d["publication"],
            period=(start, end),
            revision=int(d["revision"]),
            cells=tuple(
                Cell(m, dim, v, n, bool(hidden), Suppression(why))
                for m, dim, v, n, hidden, why in d["cells"]
            ),
            forced=bool(d["forced"]),
            reason=d["reason"],
            staged_by=d["staged_by"],
            staged_account=d["staged_account"],
            staged_at=datetime.fromisoformat(d["staged_at"]),
            linked=int(d.get("linked", 0)),
            withheld=tuple((m, dim) for m, dim in d.get("withheld", ())),
            status=d["status"],
            decided_by=d.get("decided_by"),
            decided_at=None
            if d.get("decided_at") is None
            else datetime.fromisoformat(d["decided_at"]),
            decision_reason=d.get("decision_reason"),
            audit_id=d.get("audit_id", ""),
        )


class StagedLog:
    """The staged-releases topic read back (committed records only): id -> its latest."""

    def __init__(self, settings: HubSettings) -> None:
        self.topic = settings.staged_releases_topic
        self.releases: dict[str, Staged] = {}
        self._reader = TopicReader(
            settings,
            self.topic,
            "hub-staged-releases",
            PublishError(
                f"topic {self.topic} does not exist: run `hub topics apply` (it is made when a"
                " publication of the agreement is two-person)"
            ),
            PublishError(
                f"{principal(settings)} may not read the staged releases: only the agreement's"
                " approvers (approval.approvers), the publisher and the operator do"
            ),
            isolation_level="read_committed",
        )

    def catch_up(self) -> None:
        for message in self._reader.read_to_end():
            if message.value is not None:
                staged = Staged.from_json(message.value)
                self.releases[staged.id] = staged

    def get(self, id: str) -> Staged | None:
        return self.releases.get(id)

    def waiting(self) -> list[Staged]:
        """The releases staged and not yet approved or rejected, oldest first."""
        return sorted(
            (s for s in self.releases.values() if s.status == "STAGED"), key=lambda s: s.staged_at
        )

    def close(self) -> None:
        self._reader.close()


def same_cells(a: Iterable[Cell], b: Iterable[Cell]) -> bool:
    """True when two releases would publish the same cells."""
    return sorted(_shown(a)) == sorted(_shown(b))


def _shown(cells: Iterable[Cell]) -> list[tuple[str, str, str, int, bool]]:
    return [
        (c.measure, c.dimension, c.value, -1 if c.count is None else c.count, c.suppressed)
        for c in cells
    ]
