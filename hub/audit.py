"""The partnership's audit trail: one topic, ``partnership.audit.v1``, that says what
the hub did and who did it.

Every entry is an Avro ``AuditEntry`` (``schemas/audit_entry``) of one kind:

- ``RELEASE``: a revision of a period sent to a publication topic, scheduled or
  forced (with the operator's reason), with the cells published and withheld as
  primary, secondary and linked suppressions. Of a two-person publication
  (``streams.publish.approval``), its ``status`` says whether it was staged,
  rejected or published; a published one names who staged it, its principal is
  the approver's. The publisher writes it in the
  release's own transaction, so the topic holds an entry for a release exactly
  when readers can see the release. Its id, ``release/<publication>/<period
  start>/r<revision>``, is what the board pack cites.
- ``ACL_APPLY``: the rules ``hub security acls --apply`` created and removed.
- ``KEY_ROTATION``: a new current pseudonymisation key, by key id (never a key).
  ``hub keys rotate`` runs at the agency, often with no route to Kafka: the entry
  goes into the agency's outbox and reaches the topic with its next send.
- ``AGREEMENT_CHANGE``: the agreement the cluster was brought to (``hub topics
  apply``, ``hub security acls --apply``) when its SHA-256 differs from the last
  one recorded, with what changed. The agreement names partners, principals and
  fields, never a child.
- ``SUBMISSION``: what one adapter run took from one source: rows read, new,
  corrected, withdrawn and unchanged records, and rejected rows by the field they
  were rejected on (a reason text can quote a value, so it stays in the agency's
  quarantine report). Stored in the outbox with the events, sent after them.

No entry carries an identifier of a child, a pseudonym, a key or a value from a
row; a forced release's reason is refused when it looks as if it holds one.

The topic is never compacted (``cleanup.policy=delete``, kept for the
agreement's ``retention.audit_days``, by default for ever). The operator and the
agreement's ``audit.readers`` may read it (``hub audit``); partners and the
publisher may only write to it.
"""

from __future__ import annotations

import csv
import getpass
import hashlib
import io
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_args

from kafka import KafkaProducer
from kafka.errors import KafkaError

from hub.codec import Codec
from hub.errors import BrokerError, ConfigError
from hub.kafka.client import TopicReader
from hub.kafka.security import client_config, principal_name
from hub.settings import HubSettings
from hub.trends import release_id

__all__ = ["AUDIT_TOPIC", "KINDS", "AuditWriter", "entry", "read_entries", "release_id"]

#: The audit topic before the namespace.
AUDIT_TOPIC = "partnership.audit.v1"

Kind = Literal["RELEASE", "ACL_APPLY", "KEY_ROTATION", "AGREEMENT_CHANGE", "SUBMISSION"]
KINDS: tuple[Kind, ...] = get_args(Kind)
#: The detail field each kind sets.
DETAIL: dict[Kind, str] = {
    "RELEASE": "release",
    "ACL_APPLY": "acls",
    "KEY_ROTATION": "key_rotation",
    "AGREEMENT_CHANGE": "agreement",
    "SUBMISSION": "submission",
}


@cache
def codec() -> Codec:
    return Codec("audit_entry")


def audit_topic(settings: HubSettings) -> str:
    return settings.topic(AUDIT_TOPIC)


def account() -> str:
    """The operating-system account running this process."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return "unknown"


def entry(
    kind: Kind,
    partnership: str,
    settings: HubSettings,
    detail: Mapping[str, Any],
    *,
    id: str | None = None,
    at: datetime | None = None,
    reason: str | None = None,
    user: str | None = None,
    principal: str | None = None,
) -> dict[str, Any]:
    """An ``AuditEntry`` ready to encode; `user` is the account and `principal` the Kafka
    principal that did it (by default this process's)."""
    record: dict[str, Any] = {
        "id": id or uuid.uuid4().hex,
        "kind": kind,
        "partnership": partnership,
        "at": (at or datetime.now(UTC)).astimezone(UTC),
        "principal": principal or principal_name(settings),
        "account": user or account(),
        "reason": reason,
    }
    for name in DETAIL.values():
        record[name] = None
    record[DETAIL[kind]] = dict(detail)
    return record


def encode(record: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """(key, value) of an entry on the audit topic; keyed by its kind."""
    return str(record["kind"]).encode(), codec().encode(dict(record))


# --- a forced release's reason ---------------------------------------------------
_LOOKS_IDENTIFYING = (
    (re.compile(r"\d{6,}|\d{3}[ -]\d{3}[ -]\d{4}"), "a long number"),
    (re.compile(r"\b\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b|\b\d{4}-\d{2}-\d{2}\b"), "a date"),
    (re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}\b", re.IGNORECASE), "a postcode"),
    (re.compile(r"\S+@\S+"), "an e-mail address"),
)
REASON_LIMIT = 300


def checked_reason(text: str | None) -> str:
    """A forced release's reason, refused when empty, long, or holding what looks like an
    identifier: the audit trail must not carry one."""
    reason = " ".join((text or "").split())
    if not reason:
        raise ConfigError("a forced release needs --reason: why it cannot wait for the timetable")
    if len(reason) > REASON_LIMIT:
        raise ConfigError(f"--reason is {len(reason)} characters; say why in {REASON_LIMIT}")
    for pattern, what in _LOOKS_IDENTIFYING:
        if pattern.search(reason):
            raise ConfigError(
                f"--reason holds what looks like {what}; the audit trail carries no identifier:"
                " say why without a date, number, postcode or address of a child or case"
            )
    return reason


# --- writing ---------------------------------------------------------------------
class AuditWriter:
    """Writes entries to the audit topic one at a time, each acknowledged by every
    in-sync replica before `write` returns."""

    def __init__(self, settings: HubSettings, client_id: str = "hub-audit") -> None:
        self.topic = audit_topic(settings)
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=settings.bootstrap_servers,
                client_id=client_id,
                acks="all",
                enable_idempotence=True,
                # A missing audit topic (`hub topics apply` not run yet) is said within
                # seconds, not after the client's default minute of waiting for it.
                max_block_ms=10_000,
                **client_config(settings).kafka_python(),
            )
        except KafkaError as exc:
            raise BrokerError(f"cannot reach Kafka to write the audit trail: {exc}") from exc

    def write(self, record: Mapping[str, Any]) -> None:
        key, value = encode(record)
        try:
            self._producer.send(self.topic, key=key, value=value).get(timeout=30)
        except KafkaError as exc:
            raise BrokerError(
                f"the audit topic {self.topic} did not take the {record['kind']} entry ({exc});"
                " run `hub topics apply`, and check that this principal may write it"
            ) from exc

    def close(self) -> None:
        self._producer.close(timeout=10)


def write(settings: HubSettings, record: Mapping[str, Any]) -> None:
    """Write one entry (a writer made and closed for it)."""
    writer = AuditWriter(settings)
    try:
        writer.write(record)
    finally:
        writer.close()


# --- reading ---------------------------------------------------------------------
def read_entries(
    settings: HubSettings,
    since: datetime | None = None,
    kinds: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """Every committed entry at or after `since` of the given `kinds` (all if none), in
    time order, each id once (an agency's outbox may send one twice)."""
    topic = audit_topic(settings)
    reader = TopicReader(
        settings,
        topic,
        "hub-audit",
        BrokerError(f"topic {topic} does not exist: run `hub topics apply`"),
        BrokerError(
            f"this principal may not read {topic}: the audit trail is for the operator and"
            " the agreement's audit readers"
        ),
        isolation_level="read_committed",
    )
    wanted = set(kinds)
    seen: set[str] = set()
    found: list[dict[str, Any]] = []
    try:
        for message in reader.read_to_end():
            if message.value is None:
                continue
            record = codec().decode(message.value)
            if record["id"] in seen or (wanted and record["kind"] not in wanted):
                continue
            seen.add(record["id"])
            if since is None or record["at"] >= since:
                found.append(record)
    finally:
        reader.close()
    return sorted(found, key=lambda r: (r["at"], r["id"]))


def summary(record: Mapping[str, Any]) -> str:
    """One line saying what the entry records."""
    kind = record["kind"]
    detail = record[DETAIL[kind]]
    if kind == "RELEASE":
        how = "forced" if detail["forced"] else "scheduled"
        status = detail.get("status") or "PUBLISHED"
        if status == "STAGED":
            how = f"{how} release staged for approval ({detail['staged_id']}) of"
        elif status == "REJECTED":
            how = f"rejected {how} release ({detail['staged_id']}, staged by"
            how += f" {detail['staged_by']}) of"
        elif detail.get("staged_by"):
            how = f"{how} release approved (staged by {detail['staged_by']}) of"
        else:
            how = f"{how} release of"
        return (
            f"{how} {detail['publication']} {detail['period_start']}.."
            f"{detail['period_end']} revision {detail['revision']}: {detail['cells']} cells,"
            f" {detail['published']} published, {detail['suppressed_primary']} primary,"
            f" {detail['suppressed_secondary']} secondary and {detail['suppressed_linked']}"
            " linked suppressions"
        )
    if kind == "ACL_APPLY":
        return f"ACLs applied: {len(detail['created'])} created, {len(detail['removed'])} removed"
    if kind == "KEY_ROTATION":
        agency = f" at {detail['agency']}" if detail["agency"] else ""
        return (
            f"key rotated{agency}: {detail['previous_key_id']} -> {detail['key_id']}"
            f" ({len(detail['kept_key_ids'])} kept, {len(detail['dropped_key_ids'])} dropped)"
        )
    if kind == "AGREEMENT_CHANGE":
        changes = detail["changes"]
        return f"agreement {detail['sha256'][:12]}: " + (
            "; ".join(changes[:5]) + (f"; and {len(changes) - 5} more" if len(changes) > 5 else "")
        )
    rejected = sum(detail["rejected"].values())
    return (
        f"{detail['agency']} submitted {detail['read']} rows ({detail['source_kind']},"
        f" {detail['profile']}): {detail['new']} new, {detail['changed']} corrected,"
        f" {detail['withdrawn']} withdrawn, {detail['unchanged']} unchanged, {rejected} rejected"
    )


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


COLUMNS = ("at", "id", "kind", "principal", "account", "reason", "summary", "detail")


def to_jsonl(records: Sequence[Mapping[str, Any]]) -> str:
    lines = []
    for record in records:
        kind = record["kind"]
        shown = {k: v for k, v in record.items() if k not in DETAIL.values()}
        shown[DETAIL[kind]] = record[DETAIL[kind]]
        lines.append(json.dumps(_plain(shown), sort_keys=True))
    return "".join(line + "\n" for line in lines)


def to_csv(records: Sequence[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for record in records:
        detail = _plain(record[DETAIL[record["kind"]]])
        writer.writerow(
            [
                record["at"].isoformat(),
                record["id"],
                record["kind"],
                record["principal"],
                record["account"],
                record["reason"] or "",
                summary(record),
                json.dumps(detail, sort_keys=True),
            ]
        )
    return out.getvalue()


# --- the agreement ---------------------------------------------------------------
def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def agreement_changes(before: Any, after: Any, path: str = "") -> list[str]:
    """What differs between two agreements as the hub reads them (their JSON), a line
    per change: a section's entries (by id, name, principal or code) added or removed,
    a setting from one value to another."""
    if isinstance(before, dict) and isinstance(after, dict):
        return _mapping_changes(before, after, path)
    if isinstance(before, list) and isinstance(after, list):
        return _list_changes(before, after, path)
    if before != after:
        return [f"{path}: {_short(before)} -> {_short(after)}"]
    return []


def _mapping_changes(before: dict[str, Any], after: dict[str, Any], path: str) -> list[str]:
    lines = []
    for key in sorted(set(before) | set(after)):
        where = f"{path}.{key}" if path else str(key)
        if key not in before:
            lines.append(f"{where} added: {_short(after[key])}")
        elif key not in after:
            lines.append(f"{where} removed")
        else:
            lines.extend(agreement_changes(before[key], after[key], where))
    return lines


def _list_changes(before: list[Any], after: list[Any], path: str) -> list[str]:
    old, new = _keyed(before), _keyed(after)
    if old is not None and new is not None:
        lines = [f"{path}: {name} removed" for name in old if name not in new]
        for name, item in new.items():
            if name not in old:
                lines.append(f"{path}: {name} added")
            else:
                lines.extend(agreement_changes(old[name], item, f"{path}[{name}]"))
        return lines
    if before == after:
        return []
    parts = [f"+{_short(v)}" for v in after if v not in before]
    parts += [f"-{_short(v)}" for v in before if v not in after]
    return [f"{path}: {', '.join(parts)}" if parts else f"{path}: reordered"]


_IDENTITY = ("id", "name", "code", "principal")


def _keyed(items: list[Any]) -> dict[str, Any] | None:
    """A list of entries by their identity field, or None when it is not such a list."""
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    for field in _IDENTITY:
        names = [i.get(field) for i in items]
        if all(isinstance(n, str) for n in names) and len(set(names)) == len(names):
            return dict(zip(names, items, strict=True))
    return None


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."


def agreement_entry(
    settings: HubSettings,
    partnership: str,
    document: Mapping[str, Any],
    sha256: str,
    last: Mapping[str, Any] | None,
) -> dict[str, Any] | None:
    """The entry recording the agreement `document` (file digest `sha256`), or None when
    the `last` recorded one is the same file."""
    previous = None if last is None else last["agreement"]
    if previous is not None and previous["sha256"] == sha256:
        return None
    before = None if previous is None else json.loads(previous["document"])
    changes = (
        ["first agreement recorded"]
        if before is None
        else agreement_changes(before, dict(document)) or ["the file changed; its meaning did not"]
    )
    detail = {
        "sha256": sha256,
        "previous_sha256": None if previous is None else previous["sha256"],
        "changes": changes,
        "document": json.dumps(document, sort_keys=True),
    }
    return entry("AGREEMENT_CHANGE", partnership, settings, detail)


def record_agreement(
    settings: HubSettings, partnership: str, document: Mapping[str, Any], path: Path
) -> dict[str, Any] | None:
    """Write an ``AGREEMENT_CHANGE`` entry when the agreement at `path` differs from the
    last one on the audit topic; the entry written, or None."""
    recorded = read_entries(settings, kinds=("AGREEMENT_CHANGE",))
    record = agreement_entry(
        settings, partnership, document, file_sha256(path), recorded[-1] if recorded else None
    )
    if record is not None:
        write(settings, record)
    return record
