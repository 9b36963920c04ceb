"""A case record's current version, as the stream worker keeps it and the publisher reads it.

Every event is a version of one record (``record_key``, ``record_version``).
The hub keeps, per record, only what the aggregates need from the highest
version seen: the dimensions of the trend tables and the subject pseudonym
for distinct children and linkage. Nothing else from the event is kept.

Keeping "the highest version per record" is a join semilattice: merging
versions in any order, any number of times, gives the same result. That is
what makes the counts exact after crashes and replays: the worker writes
batches of versions to its changelog, a restarted worker or the publisher
merges them all, and a batch written twice or an event processed twice
changes nothing.

Two versions of one record with the same number but different content (an
agency re-using a version number) are ordered by their content so every
reader picks the same one. A higher version with the same content (an
adapter that lost its outbox re-sends what it sent before, under new version
numbers), or the same version shared again on a later day, supersedes the
held one but changes no count: `classify` calls it a replay.

Each version carries the day it was shared, and is kept the agreement's
``retention.case_events_days`` from then, as its event is on the case topic:
after that it counts nowhere and is held nowhere (``streams.retention``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from sys import intern
from typing import Any, Literal, NamedTuple

import msgspec

#: The stream workers' Faust table whose changelog holds the batches of versions.
RECORD_VERSIONS_TABLE = "record-versions"

#: ``replay``: a higher version with the same content (see the module docstring);
#: ``expired``: a version already past the agreement's retention when it arrived.
Kind = Literal["new", "duplicate", "stale", "replay", "correction", "withdrawal", "expired"]

#: ``RecordVersion.online`` when the agency's system does not record the online component.
NOT_RECORDED = "NOT_RECORDED"


class RecordVersion(NamedTuple):
    """One record's version: the trend dimensions and the subject, nothing else."""

    record_key: str
    version: int
    live: bool  # False once withdrawn: it counts nowhere, but blocks older versions
    agency: str  # the partner id, e.g. camhs
    agency_type: str
    event_type: str
    subject: str | None  # pseudonym value; None when the event has no linkable subject
    basis: str  # how the subject was pseudonymised; NONE without a subject
    occurred_on: str  # ISO date, YYYY-MM-DD: the period the record counts in
    age_band: str
    sex: str
    area: str
    threshold: int | None
    vulnerabilities: tuple[str, ...]
    online: str  # YES / NO / NOT_ASSESSED, or NOT_RECORDED: the agency's system has no such field
    codes: tuple[str, ...]  # online-risk codes, sorted
    role: str
    outcome: str
    #: The subject's other pseudonyms: under earlier keys (after a key rotation) and on
    #: the other identifiers the record carries (``other_subjects``): the same child,
    #: linked by ``streams.aggregate.linked_subjects``.
    previous: tuple[str, ...] = ()
    #: The UTC day the version was shared (its event's ``reported_at``): the version is
    #: kept the agreement's ``case_events_days`` from then (``streams.retention``).
    #: Empty in batches written before versions carried it.
    shared_on: str = ""

    @classmethod
    def from_event(cls, record: Mapping[str, Any]) -> RecordVersion:
        """From a decoded case event (fastavro's dict).

        Every value but the record key repeats across records (a child's
        pseudonym, agency, date, codes...), so each is shared: a million
        records then hold one copy of each, not a million. fastavro hands
        every enum value over as its schema's one copy of the symbol already;
        the other strings are interned, days and tuples looked up.
        """
        subject = record.get("subject")
        online = record["online_component"]
        if online == "NOT_ASSESSED" and not record.get("online_recorded", True):
            online = NOT_RECORDED
        previous = record.get("previous_subjects") or ()
        others = record.get("other_subjects") or ()
        vulnerabilities = record["vulnerabilities"]
        risks = record["online_risks"]
        return cls(
            record["record_key"],
            int(record["record_version"]),
            record["event_type"] != "WITHDRAWN",
            intern(record["agency_id"]),
            _symbol(record["agency_type"]),
            _symbol(record["event_type"]),
            intern(subject["value"]) if subject else None,
            _symbol(subject["basis"]) if subject else "NONE",
            _day(record["occurred_on"]),
            intern(record["age_band"]),
            _symbol(record["sex"]),
            intern(record["area_code"]),
            record["threshold_level"],
            _shared(tuple(sorted(vulnerabilities))) if vulnerabilities else (),
            _symbol(online),
            _shared(tuple(sorted(set(risks)))) if risks else (),
            _symbol(record["role"]),
            _symbol(record["outcome"]),
            _aliases(subject, [*previous, *others]) if previous or others else (),
            _shared_day(record["reported_at"]),
        )

    def to_json(self) -> list[Any]:
        """A compact JSON form (a list, field order as declared)."""
        return [
            *self[:13],
            list(self.vulnerabilities),
            self.online,
            list(self.codes),
            self.role,
            self.outcome,
            list(self.previous),
            self.shared_on,
        ]

    @classmethod
    def from_json(cls, data: list[Any]) -> RecordVersion:
        """From ``to_json``'s list (18 fields, before ``previous``, and 19, before
        ``shared_on``, read too)."""
        values = list(data)
        for index in (13, 15, 18):
            if index < len(values):
                values[index] = tuple(values[index])
        return _shared_values(cls(*values))

    @property
    def month(self) -> str:
        """YYYY-MM of occurred_on."""
        return self.occurred_on[:7]

    @property
    def retained_from(self) -> str:
        """The day the version's retention runs from: when it was shared, or for a
        version written before that was kept, the day it occurred (no later: an event
        is not reported before it happens, ``streams.checks``)."""
        return self.shared_on or self.occurred_on


#: ISO text of each day seen (a few thousand over years of history).
_DAYS: dict[Any, str] = {}
#: Days of ISO text kept by ``_day`` before it starts again.
DAYS_HELD = 100_000


def _day(day: Any) -> str:
    """A day (a date, or ISO text) as one shared copy of its ISO text."""
    text = _DAYS.get(day)
    if text is None:
        if len(_DAYS) > DAYS_HELD:
            _DAYS.clear()
        text = _DAYS[day] = intern(day if isinstance(day, str) else day.isoformat())
    return text


def _shared_day(reported: Any) -> str:
    """The UTC day of a report time as ``_day`` shares it."""
    if reported.__class__ is datetime and reported.tzinfo is UTC:
        return _day(reported.date())
    return _day(_utc_day(reported))


def _symbol(value: Any) -> str:
    """An enum value: a string already (fastavro's symbol), or an enum member."""
    return value if value.__class__ is str else _text(value)


def _utc_day(reported: Any) -> str:
    """The UTC day of a report time (a datetime, or ISO text)."""
    if isinstance(reported, str):
        reported = datetime.fromisoformat(reported)
    if reported.tzinfo is None:
        return str(reported.date().isoformat())
    return str(reported.astimezone(UTC).date().isoformat())


def _aliases(subject: Mapping[str, Any] | None, others: list[Mapping[str, Any]]) -> tuple[str, ...]:
    """The other pseudonyms, each once, in the order sent, without the subject itself."""
    own = subject["value"] if subject else None
    seen = dict.fromkeys(_text(p["value"]) for p in others if p["value"] != own)
    return tuple(seen)


def _text(value: Any) -> str:
    """One shared copy of a repeated string (enum members become their value)."""
    return intern(value if value.__class__ is str else str(value))


_TUPLES: dict[tuple[str, ...], tuple[str, ...]] = {}


def _shared(values: tuple[str, ...]) -> tuple[str, ...]:
    """One shared copy of each distinct tuple of codes or flags (there are few)."""
    held = _TUPLES.get(values)
    if held is None:
        held = _TUPLES[values] = tuple(_text(v) for v in values)
    return held


def supersedes(new: RecordVersion, held: RecordVersion | None) -> bool:
    """True when `new` replaces `held` as the record's current version."""
    if held is None:
        return True
    if new.version != held.version:
        return new.version > held.version
    return new != held and _canonical(new) > _canonical(held)


def _canonical(version: RecordVersion) -> str:
    return json.dumps(version.to_json(), separators=(",", ":"))


def classify(new: RecordVersion, held: RecordVersion | None) -> Kind:
    """What an event does to its record, given the version held."""
    if held is None:
        return "withdrawal" if not new.live else "new"
    if not supersedes(new, held):
        return "duplicate" if new.version == held.version else "stale"
    if same_content(new, held):
        return "replay"
    return "withdrawal" if not new.live else "correction"


def same_content(a: RecordVersion, b: RecordVersion) -> bool:
    """True when two versions of a record differ in their version number and the day
    they were shared at most."""
    return a[2:-1] == b[2:-1]


def merge(records: dict[str, RecordVersion], versions: Iterable[RecordVersion]) -> None:
    """Fold versions into `records` (record key -> current version), in place."""
    for version in versions:
        if supersedes(version, records.get(version.record_key)):
            records[version.record_key] = version


class _Batch(msgspec.Struct):
    """A changelog message as it is decoded (``decode_batch``)."""

    versions: list[RecordVersion]
    read: dict[str, int]


_BATCH = msgspec.json.Decoder(_Batch)


def encode_batch(versions: Iterable[RecordVersion], read: Mapping[str, int] | None = None) -> bytes:
    """One changelog message: changed versions, and per source topic the last offset
    of the partition whose events the batch covers (replays included).

    JSON: ``{"versions": [[field, ...], ...], "read": {topic: offset}}``, each version
    an array of its fields in declared order (``RecordVersion.to_json``).
    """
    return msgspec.json.encode({"versions": list(versions), "read": dict(read or {})})


def decode_batch(data: bytes, share: bool = True) -> tuple[list[RecordVersion], dict[str, int]]:
    """A changelog message's versions and read offsets.

    Decoded in one pass straight into versions (msgspec checks every field's type
    as it goes), then, with `share`, each repeated value is shared
    (``_shared_values``): worth it for versions that are kept in memory, not for
    those written to disk at once. Batches written before versions carried
    ``previous`` (18 fields) read too.
    """
    batch = _BATCH.decode(data)
    if not share:
        return batch.versions, batch.read
    return [_shared_values(v) for v in batch.versions], batch.read


def _shared_values(v: RecordVersion) -> RecordVersion:
    return RecordVersion(
        v.record_key,
        v.version,
        v.live,
        intern(v.agency),
        intern(v.agency_type),
        intern(v.event_type),
        None if v.subject is None else intern(v.subject),
        intern(v.basis),
        intern(v.occurred_on),
        intern(v.age_band),
        intern(v.sex),
        intern(v.area),
        v.threshold,
        _shared(v.vulnerabilities),
        intern(v.online),
        _shared(v.codes),
        intern(v.role),
        intern(v.outcome),
        tuple(intern(p) for p in v.previous) if v.previous else (),
        intern(v.shared_on),
    )
