"""Record versions at the agency: whether each row is new, a correction, a withdrawal or unchanged.

Most agency exports have no version column. The adapter keeps, per source
record, what it last sent (`adapters.outbox.RecordState`): the version and a
keyed digest of the mapped content, never the content. Then, for each row:

* no state held: a new record, version `clock_version()`;
* the same digest as held: unchanged (a re-export, a re-sent file): nothing is sent;
* a different digest: the next version, ``max(clock_version(), held + 1)``, with a
  new event id: a correction, or a withdrawal when the row says withdrawn or
  cancelled.

Versions follow the clock (seconds since 2020-01-01 UTC) so that an adapter
that lost its outbox still numbers later changes above everything it sent
before: the first export after the loss re-sends each record it lists under a
new version with unchanged content, which the hub counts as a replay
(`streams.records.classify`), and later corrections are never taken for stale
versions. Where the export has a version column (the profile maps
``record_version``), its versions are used as they are.

Withdrawals an export does not spell out row by row:

* a withdrawn row withdraws the other live records of its record id that the
  export does not list (the other people on a cancelled occurrence, the other
  activities of a withdrawn referral);
* a full export (profile ``export: full``) withdraws every live record it no
  longer lists, unless that looks like an accident: see `SnapshotCheck`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, NamedTuple

from adapters.mapping import MappedRow
from adapters.outbox import Outbox, RecordState
from hub.codec import Codec
from hub.errors import HubError
from hub.models import CaseEvent, EventType, Pseudonym
from hub.pseudonymise import Pseudonymiser

Change = Literal["new", "corrected", "withdrawn", "unchanged"]
CHANGES: tuple[Change, ...] = ("new", "corrected", "withdrawn", "unchanged")
EPOCH = datetime(2020, 1, 1, tzinfo=UTC).timestamp()

#: Event fields that are not content: a re-export with the same content is unchanged.
_NOT_CONTENT = ("event_id", "record_version", "reported_at", "schema_version")
_CONTENT = tuple(name for name in CaseEvent.model_fields if name not in _NOT_CONTENT)


def content_text(event: CaseEvent) -> str:
    """Every content field of the event, in declaration order, as one text (runs per row,
    so built by hand: a pseudonym by its value, a sequence joined, None as empty)."""
    fields = event.__dict__
    parts: list[str] = []
    for name in _CONTENT:
        value = fields[name]
        if type(value) is tuple:
            parts.append("|".join(v.value if isinstance(v, Pseudonym) else v for v in value))
        elif isinstance(value, Pseudonym):
            parts.append(value.value)
        elif value is None:
            parts.append("")
        else:
            parts.append(value if isinstance(value, str) else str(value))
    return "\x1f".join(parts)


def clock_version(now: float) -> int:
    """Whole seconds since 2020-01-01 UTC: a version that only grows (and fits Avro's int
    until 2088)."""
    return max(1, int(now - EPOCH))


class Resolved(NamedTuple):
    """What one row (or one record an export no longer lists) does."""

    change: Change
    event: CaseEvent | None  # to send; None when unchanged
    state: RecordState | None  # to hold from now on; None when unchanged


@dataclass(frozen=True)
class SnapshotCheck:
    """When a full export may withdraw the live records it no longer lists.

    Refused (nothing withdrawn, the user told how to confirm) when it would
    withdraw more than `limit` of the agency's live records, when the export
    holds no record at all, or when some of its rows could not be identified
    (a truncated or damaged file: the missing records may just be unreadable).
    """

    limit: float = 0.2

    def refusal(self, absent: int, live: int, listed: int, unidentified: int) -> str | None:
        if absent == 0:
            return None
        if listed == 0:
            return f"the export lists no record, so all {live} live records would be withdrawn"
        if unidentified:
            return (
                f"{unidentified} row(s) could not be read or identified (is the file truncated"
                f" or damaged?), so the {absent} records it does not list may only be unreadable"
            )
        if absent > self.limit * live:
            return (
                f"it would withdraw {absent} of the {live} live records ({absent / live:.0%}),"
                f" more than the limit of {self.limit:.0%} (HUB_WITHDRAWAL_LIMIT)"
            )
        return None


class Versioner:
    """Numbers the versions of one agency's records and builds its withdrawals."""

    def __init__(
        self,
        pseudonymiser: Pseudonymiser,
        outbox: Outbox | None,
        agency: str,
        versioned: bool,
        codec: Codec,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pseudonymiser = pseudonymiser
        self.outbox = outbox
        self.agency = agency
        self.versioned = versioned
        self.codec = codec
        self.clock = clock

    def digest(self, event: CaseEvent) -> str:
        """A keyed digest of what the event says about its record (not its version)."""
        return self.pseudonymiser.content_digest(self.agency, content_text(event))

    def resolve(self, rows: Sequence[tuple[MappedRow, str]]) -> list[Resolved]:
        """What each row (with its `digest`) does, given what was sent before; the rows
        are of distinct records."""
        held: dict[str, RecordState] = {}
        if self.outbox is not None:
            held = self.outbox.states(self.agency, [r.identity.key for r, _ in rows])
        return [self._resolve(row, digest, held.get(row.identity.key)) for row, digest in rows]

    def _resolve(self, row: MappedRow, digest: str, held: RecordState | None) -> Resolved:
        event = row.event
        live = event.event_type is not EventType.WITHDRAWN
        if held is not None and held.digest == digest:
            if not self.versioned or event.record_version == held.version:
                return Resolved("unchanged", None, None)
        if self.versioned:
            if held is not None and event.record_version < held.version:
                return Resolved("unchanged", None, None)  # an older version, re-sent
        else:
            version = self._next_version(held)
            event = event.model_copy(
                update={
                    "record_version": version,
                    "event_id": self.pseudonymiser.derived_event_id(
                        self.agency, event.record_key, version
                    ),
                }
            )
        change: Change = "withdrawn" if not live else "new" if held is None else "corrected"
        state = RecordState(
            event.record_key,
            row.identity.group,
            event.record_version,
            digest,
            live,
            event.event_id,
        )
        return Resolved(change, event, state)

    def _next_version(self, held: RecordState | None) -> int:
        now = clock_version(self.clock())
        return now if held is None else max(now, held.version + 1)

    def withdraw(self, records: Iterable[RecordState]) -> list[Resolved]:
        """Withdrawals of live records that an export no longer lists."""
        if self.outbox is None:
            return []
        out: list[Resolved] = []
        for held in records:
            last = self.outbox.event(held.event_id)
            if last is None:
                raise HubError(
                    f"the outbox {self.outbox.path} holds a record state whose event is gone;"
                    " it is damaged: restore it or start a new one"
                )
            previous = CaseEvent.from_avro(self.codec.decode(last.value))
            version = self._next_version(held)
            event = previous.model_copy(
                update={
                    "event_type": EventType.WITHDRAWN,
                    "record_version": version,
                    "event_id": self.pseudonymiser.derived_event_id(
                        self.agency, held.record_key, version
                    ),
                    "reported_at": datetime.fromtimestamp(self.clock(), UTC),
                }
            )
            state = RecordState(
                held.record_key, held.group, version, self.digest(event), False, event.event_id
            )
            out.append(Resolved("withdrawn", event, state))
        return out
