"""Publication on the agreed timetable: closed periods, disclosure control, revisions.

At each scheduled time of a publication in the agreement (cron + timezone),
the publisher

1. waits until the stream workers have applied every case event already on
   the agency topics (each changelog batch records how far its partition's
   events are applied; that must reach the end offsets taken at that moment),
   so a publication never misses data that had arrived;
2. reads every record version the workers made durable (their changelog
   topic) and keeps the highest version per record (``streams.records``), which is
   exactly the state the workers hold, however often they crashed;
3. computes the closed period's cells (``streams.aggregate``) from that period's
   counts, which ``streams.index`` keeps up to date as versions arrive (the old
   version's contribution retracted, the new one's added), with the agreement's
   disclosure rule, protects them against everything already on the topic that a
   reader can put beside them (``hub.linked``: the months of a quarter, the
   period's earlier revisions), and publishes them to the publication's topic in the agreement
   (``partnership.trends.v1``) as trend snapshots, key = publication | period |
   measure | dimension | value;
4. re-checks every period this publication released before: when late or
   corrected data changed any published cell, the whole period is released
   again with the next revision number, until the period is final: once a
   record it counts may have passed the agreement's retention, its last
   revision stands (``streams.retention``).

Record versions past retention are left out of every period not yet
released, and of the publisher's memory.

Nothing is published before its time: the scheduler only acts at scheduled
times, and ``hub publish --now`` (an operator's forced release, with a reason)
refuses a period that has not ended. Every release is an entry of the audit
trail (``hub.audit``), sent in the release's own transaction.

What has been published is read back from the trends topic itself, so a
restarted publisher knows the latest revision of every period without any
state of its own.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any, Protocol

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from hub import audit
from hub.agreement.model import Agreement, Schedule
from hub.audit import checked_reason
from hub.codec import Codec
from hub.disclosure import DisclosureRule, Suppression
from hub.errors import BrokerError, ConfigError, PublishError
from hub.kafka.client import TopicReader
from hub.kafka.security import client_config, principal_name
from hub.linked import Release as LinkedRelease
from hub.linked import secure_release
from hub.models import TrendSnapshot
from hub.periods import Period, history_periods, parse_period, period_label, period_starting
from hub.settings import TRENDS_TOPIC, HubSettings
from hub.taxonomy import Taxonomy
from hub.trends import CellKey, PeriodKey, Published, PublishedPeriod
from streams.aggregate import Cell, protect_cells
from streams.index import RecordIndex
from streams.publish.staging import Staged, StagedLog, same_cells
from streams.records import RECORD_VERSIONS_TABLE, RecordVersion, decode_batch
from streams.retention import cutoff, final_from

log = logging.getLogger(__name__)


def changelog_topic(settings: HubSettings) -> str:
    """The workers' record-versions changelog (Faust names it after app id and table)."""
    return f"{settings.worker_app_id}-{RECORD_VERSIONS_TABLE}-changelog"


def cell_key(publication: str, period: Period, cell: Cell) -> bytes:
    return "|".join(
        (publication, period[0].isoformat(), cell.measure, cell.dimension, cell.value)
    ).encode()


class Messages(Protocol):
    """What ``VersionLog`` reads from: a topic's messages up to its end, then closed."""

    def read_to_end(self) -> Iterator[Any]: ...

    def close(self) -> None: ...


class VersionLog:
    """The workers' changelog, folded into record key -> current version, indexed
    by period (``streams.index.RecordIndex``).

    Keeps its consumer, so each ``catch_up`` reads only what is new.
    """

    def __init__(
        self, settings: HubSettings, taxonomy: Taxonomy, reader: Messages | None = None
    ) -> None:
        """``reader``: where the changelog's messages come from (by default the topic)."""
        self.topic = changelog_topic(settings)
        self.index = RecordIndex(taxonomy)
        #: Versions shared before this day (ISO) have passed retention: never folded in
        #: (``streams.retention``); empty: none yet worked out.
        self.since = ""
        self._expired = ""  # the day records were last removed for
        #: (agency topic, partition) -> the last offset the workers have applied.
        self.read: dict[tuple[str, int], int] = {}
        self._reader = reader or TopicReader(
            settings,
            self.topic,
            "hub-publisher",
            PublishError(
                f"topic {self.topic} does not exist: no stream worker has run for this hub"
                " (start one with `hub streams worker`)"
            ),
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
        )

    def catch_up(self, progress_every: float = 5.0) -> int:
        """Read to the current end of the changelog; the number of batches read.

        A long read (a process starting on years of history) says how far it is
        every ``progress_every`` seconds, and how long it took.
        """
        batches = versions_read = 0
        started = said = time.monotonic()
        for message in self._reader.read_to_end():
            if message.value is not None:
                versions, read = decode_batch(message.value)
                self.index.merge(versions, self.since)
                for topic, offset in read.items():
                    key = (topic, message.partition)
                    self.read[key] = max(offset, self.read.get(key, -1))
                batches += 1
                versions_read += len(versions)
            if time.monotonic() - said >= progress_every:
                said = time.monotonic()
                log.info(
                    "reading the record-versions changelog: %d batches, %d record versions,"
                    " %d records so far",
                    batches,
                    versions_read,
                    len(self.index.records),
                )
        if said > started:
            log.info(
                "read %d changelog batches (%d record versions, %d records now) in %.0f s",
                batches,
                versions_read,
                len(self.index.records),
                time.monotonic() - started,
            )
        return batches

    def retain(self, since: str) -> int:
        """From now on, leave out versions shared before `since`, and remove the records
        held whose version was; how many were removed."""
        self.since = since
        if since == self._expired:
            return 0
        self._expired = since
        gone = self.index.expire(since)
        if gone:
            log.info("%d records past retention (shared before %s) removed", gone, since)
        return gone

    @property
    def records(self) -> dict[str, RecordVersion]:
        """Record key -> its current version."""
        return self.index.records

    def close(self) -> None:
        self._reader.close()


class TrendsLog:
    """The trends topic read back and folded (``hub.trends.Published``): per
    (publication, period start), the latest revision, whole."""

    def __init__(self, settings: HubSettings) -> None:
        self.topic = settings.trends_topic
        self.codec = Codec("trend_snapshot")
        self.published = Published()
        #: (publication, period start, revision) -> (period end, cell -> count): every
        #: revision ever released, as a reader of the topic can combine them.
        self.history: dict[tuple[str, date, int], tuple[date, dict[CellKey, int | None]]] = {}
        #: Held while a snapshot is added; the metrics thread copies under it (``copy``).
        self.lock = threading.Lock()
        self._reader = TopicReader(
            settings,
            self.topic,
            "hub-publisher-trends",
            PublishError(f"topic {self.topic} does not exist: run `hub topics apply`"),
            isolation_level="read_committed",
        )

    @property
    def periods(self) -> dict[PeriodKey, PublishedPeriod]:
        """(publication, period start) -> its latest revision (for the thread that adds)."""
        return self.published.periods

    def catch_up(self) -> None:
        for message in self._reader.read_to_end():
            if message.value is not None:
                self.add(self.codec.decode(message.value))

    def add(self, snapshot: Mapping[str, Any]) -> None:
        with self.lock:
            self.published.add(snapshot)
        key = (snapshot["publication"], snapshot["period_start"], int(snapshot["revision"]))
        held = self.history.setdefault(key, (snapshot["period_end"], {}))
        held[1][snapshot["measure"], snapshot["dimension"], snapshot["value"]] = snapshot["count"]

    def releases(self) -> list[LinkedRelease]:
        """Every revision of every period released so far."""
        return [
            LinkedRelease(publication, start, end, revision, cells)
            for (publication, start, revision), (end, cells) in self.history.items()
        ]

    def copy(self) -> Published:
        """What is published so far, copied under the lock: safe to read in any thread."""
        with self.lock:
            return self.published.copy()

    def close(self) -> None:
        self._reader.close()


@dataclass(frozen=True)
class Who:
    """Who forced a release: the account, the principal that asked, and why."""

    account: str
    principal: str
    reason: str


@dataclass(frozen=True)
class Release:
    """One publication of one period: what was (or would have been) sent."""

    publication: str
    period: Period
    revision: int
    cells: int
    suppressed: int
    changed: bool
    forced: bool = False
    #: Cells hidden only because of what the topic already holds (``hub.linked``).
    linked: int = 0
    #: (measure, dimension) breakdowns withheld whole for the same reason.
    withheld: tuple[tuple[str, str], ...] = ()
    #: The release's entry on the audit topic (``hub.audit.release_id``).
    audit_id: str = ""
    #: Staged for approval, not published (a two-person publication): its id.
    staged_id: str = ""


def _as_published(cells: Iterable[Cell]) -> dict[CellKey, tuple[int | None, bool]]:
    return {(c.measure, c.dimension, c.value): (c.count, c.suppressed) for c in cells}


def wait_for_workers(
    settings: HubSettings,
    topics: Iterable[str],
    versions: VersionLog,
    timeout: float,
    poll: float = 0.5,
) -> None:
    """Block until the changelog covers every event on the case topics `topics` (the
    agreement's partners') right now.

    Each changelog batch says how far its partition's events are applied, so
    this does not depend on when the workers commit their offsets.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, **client_config(settings).kafka_python()
    )
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends = consumer.end_offsets(partitions)
    finally:
        consumer.close()
    deadline = time.monotonic() + timeout
    while True:
        versions.catch_up()
        behind = sum(
            max(0, end - versions.read.get((tp.topic, tp.partition), -1) - 1)
            for tp, end in ends.items()
        )
        if behind == 0:
            return
        if time.monotonic() > deadline:
            raise PublishError(
                f"the stream workers are {behind} events behind the agency topics after"
                f" {timeout:.0f} s; is `hub streams worker` running? Nothing was published."
            )
        time.sleep(poll)


class Publisher:
    """Computes and publishes closed periods; ``run_due`` is what the scheduler calls."""

    def __init__(
        self,
        settings: HubSettings,
        agreement: Agreement,
        *,
        worker_timeout: float = 300.0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        role: str = "scheduled",
    ) -> None:
        self.settings = settings
        self.agreement = agreement
        self.worker_timeout = worker_timeout
        self.now = now
        self.rule = agreement.disclosure
        self.partners = [partner.id for partner in agreement.partners]
        self.case_topics = [settings.topic(topic) for topic in agreement.case_topics]
        #: publication name -> the topic its cells are sent to (the agreement's `topic`).
        self.topics = {s.name: settings.topic(s.topic) for s in agreement.publication}
        elsewhere = [s for s in agreement.publication if s.topic != TRENDS_TOPIC]
        if elsewhere:
            named = ", ".join(f"{s.name!r} names {s.topic}" for s in elsewhere)
            raise ConfigError(
                f"in the agreement, publication {named}: every publication must name"
                f" {TRENDS_TOPIC}, the topic the hub reads published trends from (the"
                " publisher's revisions, `hub subscribe`, `hub report`)"
            )
        self.codec = Codec("trend_snapshot")
        self.audit_topic = audit.audit_topic(settings)
        self.versions = VersionLog(settings, agreement.taxonomy)
        #: period -> (its ``RecordIndex.changes``, its cells) when last computed.
        self._cells: dict[Period, tuple[int, list[Cell]]] = {}
        self.trends = TrendsLog(settings)
        two_person = any(s.approval == "two-person" for s in agreement.publication)
        #: The releases staged for approval (two-person publications), None without any.
        self.staged = StagedLog(settings) if two_person else None
        try:
            # Each release is one transaction: readers (read_committed) see a period's
            # revision whole or not at all, even if this process dies while sending it.
            # One transactional id per role, so a restarted publisher aborts what its
            # predecessor left open at once instead of after the transaction timeout.
            self._producer = KafkaProducer(
                bootstrap_servers=settings.bootstrap_servers,
                client_id="hub-publisher",
                acks="all",
                enable_idempotence=True,
                transactional_id=f"{settings.worker_app_id}-publisher-{role}",
                linger_ms=20,
                **client_config(settings).kafka_python(),
            )
            self._producer.init_transactions()
        except KafkaError as exc:
            self.close()
            raise BrokerError(f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}") from exc

    def _abort(self) -> None:
        try:
            self._producer.abort_transaction()
        except KafkaError as exc:  # the coordinator aborts it after the transaction timeout
            log.warning("could not abort the release's transaction: %s", exc)

    def close(self) -> None:
        self.versions.close()
        self.trends.close()
        if self.staged is not None:
            self.staged.close()
        producer = getattr(self, "_producer", None)
        if producer is not None:
            producer.close(timeout=10)

    # --- the timetable -----------------------------------------------------------
    def run_due(self, at: datetime | None = None) -> list[Release]:
        """Publish whatever is due at `at` (default now) on every schedule.

        For a schedule with a scheduled time exactly at `at`: the period that
        time closes is released, and every period the schedule released before
        is released again, with the next revision, if its cells changed.
        For any other schedule, only catching up: the period closed by its
        latest scheduled time before `at` is released if it never was (the
        service was down then); revisions wait for a scheduled time.
        Catching up also covers the history: every closed period back to the
        first with a record, at most ``HUB_HISTORY_MONTHS`` back, that was never
        released (a hub started on an existing event log publishes its trend
        history at once). Running it twice for the same moment publishes
        nothing new.
        """
        at = (at or self.now()).astimezone(UTC)
        releases: list[Release] = []
        self._catch_up()
        first = self._first_record_day()
        for schedule in self.agreement.publication:
            scheduled = self.agreement.previous_publication(schedule.name, at).astimezone(UTC)
            closed = self.agreement.closed_period(schedule.name, scheduled)
            released = self._released_periods(schedule.name)
            history = history_periods(schedule.closes, closed, first, self.settings.history_months)
            backlog = history - released
            periods = backlog | released if scheduled == at else backlog
            for period in sorted(periods):
                releases.append(self._release(schedule.name, period, at))
        return releases

    def publish_now(
        self,
        period_text: str,
        schedule_name: str | None = None,
        *,
        reason: str,
        user: str | None = None,
        principal: str | None = None,
        worker_timeout: float | None = None,
    ) -> Release:
        """An operator's forced release of one ended period, for `reason`, audited with
        `user` (by default this process's account) and the `principal` that asked (by
        default this process's); waits `worker_timeout` seconds at most (by default the
        publisher's) for the stream workers to catch up."""
        reason = checked_reason(reason)
        kind, period = parse_period(period_text)
        schedule = self._schedule_for(kind, schedule_name)
        now = self.now()
        local_today = now.astimezone(self.agreement.zone_of(schedule)).date()
        if period[1] >= local_today:
            raise PublishError(
                f"period {period_label(kind, period)} has not ended (it ends {period[1]});"
                " only a closed period can be released"
            )
        self._catch_up(worker_timeout)
        who = Who(user or audit.account(), principal or principal_name(self.settings), reason)
        release = self._release(schedule.name, period, now, forced=True, who=who)
        log.warning(
            "forced release by %s at %s: %s %s revision %d (%d cells, %s)",
            who.account,
            now.isoformat(timespec="seconds"),
            schedule.name,
            period_label(kind, period),
            release.revision,
            release.cells,
            "published" if release.changed else "unchanged, nothing sent",
        )
        return release

    def _schedule_for(self, kind: str, name: str | None) -> Schedule:
        if name is not None:
            schedule = self.agreement.schedule(name)
            if schedule.closes != kind:
                raise ConfigError(f"publication {name} closes a {schedule.closes}, not a {kind}")
            return schedule
        for schedule in self.agreement.publication:
            if schedule.closes == kind:
                return schedule
        raise ConfigError(f"the agreement has no publication that closes a {kind}")

    def _catch_up(self, worker_timeout: float | None = None) -> None:
        timeout = self.worker_timeout if worker_timeout is None else worker_timeout
        self.versions.retain(self.retention_since())
        wait_for_workers(self.settings, self.case_topics, self.versions, timeout)
        self.trends.catch_up()
        if self.staged is not None:
            self.staged.catch_up()

    def retention_since(self) -> str:
        """Versions shared before this day (ISO) have passed retention."""
        today = self.now().astimezone(UTC).date()
        return cutoff(today, self.agreement.retention.case_events_days)

    def _first_record_day(self) -> date | None:
        """When the earliest live record occurred: how far back the history goes."""
        return self.versions.index.first_day()

    def _released_periods(self, publication: str) -> set[Period]:
        kind = self.agreement.schedule(publication).closes
        return {
            period_starting(kind, start)
            for name, start in list(self.trends.periods)
            if name == publication
        }

    def cells(self, period: Period) -> list[Cell]:
        """The period's cells (``streams.aggregate``), before what the topic already holds.

        From the period's counts, which the index keeps up to date as versions
        arrive (``streams.index``), and only when a change reached them since
        the last time.
        """
        index = self.versions.index
        changes = index.changes(*period)
        held = self._cells.get(period)
        if held is not None and held[0] == changes:
            return held[1]
        breakdowns = index.breakdowns(*period, self.partners)
        cells = protect_cells(breakdowns, self.rule)
        self._cells[period] = (changes, cells)
        return cells

    def _release(
        self,
        publication: str,
        period: Period,
        at: datetime,
        forced: bool = False,
        who: Who | None = None,
    ) -> Release:
        held = self.trends.periods.get((publication, period[0]))
        days = self.agreement.retention.case_events_days
        if held is not None and at.astimezone(UTC).date() >= final_from(period[0], days):
            # Records it counts may have passed retention: the period is final.
            log.info(
                "%s %s..%s is final (records it counts may have passed the %d days'"
                " retention): revision %d stands",
                publication,
                period[0],
                period[1],
                days,
                held.revision,
            )
            hidden = sum(1 for _, suppressed in held.cells.values() if suppressed)
            return Release(
                publication, period, held.revision, len(held.cells), hidden, False, forced
            )
        cells = self.cells(period)
        revision = 0 if held is None else held.revision + 1
        linked: list[CellKey] = []
        withheld: tuple[tuple[str, str], ...] = ()
        if held is None or held.cells != _as_published(cells):
            cells, linked, withheld = secured_cells(
                cells, publication, period, revision, self.trends.releases(), self.rule
            )
        suppressed = sum(1 for c in cells if c.suppressed)
        if held is not None and held.cells == _as_published(cells):
            return Release(
                publication, period, held.revision, len(cells), suppressed, False, forced
            )
        if self.agreement.schedule(publication).approval == "two-person":
            return self._stage(
                Staged(
                    publication,
                    period,
                    revision,
                    tuple(cells),
                    forced,
                    None if who is None else who.reason,
                    who.principal if who is not None else principal_name(self.settings),
                    who.account if who is not None else audit.account(),
                    at,
                    linked=len(linked),
                    withheld=withheld,
                )
            )
        entry = release_entry(
            self.settings, self.agreement, publication, period, revision, cells, at, forced, who,
            withheld,
        )  # fmt: skip
        self._send(publication, period, revision, cells, at, entry)
        log.info(
            "published %s %s..%s revision %d: %d cells, %d suppressed (%d of them for what"
            " the topic already holds)",
            publication,
            period[0],
            period[1],
            revision,
            len(cells),
            suppressed,
            len(linked),
        )
        if withheld:
            log.warning(
                "%s %s..%s revision %d withholds %s whole: published, it would let a reader"
                " of the topic confine a hidden cell to 1..%d; earlier revisions' cells"
                " stay on the topic",
                publication,
                period[0],
                period[1],
                revision,
                ", ".join(f"{m} by {d}" for m, d in withheld),
                self.rule.suppress_at_or_below,
            )
        return Release(
            publication,
            period,
            revision,
            len(cells),
            suppressed,
            True,
            forced,
            linked=len(linked),
            withheld=withheld,
            audit_id=entry["id"],
        )

    def _stage(self, staged: Staged) -> Release:
        """Stage a release of a two-person publication instead of publishing it: on the
        staged-releases topic, with its ``STAGED`` audit entry, in one transaction. A
        release staged before with the same cells is left as it is, and so is one rejected
        unless an operator forces it again."""
        if self.staged is None:  # made whenever a publication is two-person
            raise ConfigError(f"publication {staged.publication} is not two-person")
        held = self.staged.get(staged.id)
        summary = (staged.publication, staged.period, staged.revision, len(staged.cells))
        if held is not None and same_cells(held.cells, staged.cells):
            if held.status == "STAGED":
                return Release(
                    *summary, held.suppressed, False, staged.forced,
                    staged_id=staged.id, audit_id=held.audit_id,
                )  # fmt: skip
            if held.status == "REJECTED" and not staged.forced:  # an operator may ask again
                return Release(*summary, held.suppressed, False, False, audit_id=held.audit_id)
        forcing = Who(staged.staged_account, staged.staged_by, staged.reason or "")
        who = forcing if staged.forced else None
        entry = staged_entry(self.settings, self.agreement, staged, "STAGED", staged.staged_at, who)
        staged = replace(staged, audit_id=entry["id"])
        messages = [
            (self.staged.topic, staged.id.encode(), staged.to_json()),
            audit_message(self.audit_topic, entry),
        ]
        transact(self._producer, messages, f"staging {staged.id}", self._abort)
        self.staged.catch_up()
        log.info(
            "staged %s %s..%s revision %d for approval: %d cells, %d suppressed; `hub release"
            " approve %s` by one of the agreement's approvers publishes it",
            staged.publication, staged.period[0], staged.period[1], staged.revision,
            len(staged.cells), staged.suppressed, staged.id,
        )  # fmt: skip
        return Release(
            *summary, staged.suppressed, False, staged.forced,
            linked=staged.linked, withheld=staged.withheld, audit_id=entry["id"],
            staged_id=staged.id,
        )  # fmt: skip

    def _send(
        self,
        publication: str,
        period: Period,
        revision: int,
        cells: Iterable[Cell],
        at: datetime,
        entry: Mapping[str, Any],
    ) -> None:
        messages = cell_messages(
            self.codec, self.agreement.partnership, self.topics[publication], publication,
            period, revision, cells, at,
        )  # fmt: skip
        # The audit entry in the same transaction: on the audit topic exactly when
        # the release is on the trends topic.
        messages.append(audit_message(self.audit_topic, entry))
        transact(
            self._producer, messages, f"revision {revision} of {publication} {period[0]}",
            self._abort,
        )  # fmt: skip
        self.trends.catch_up()


def release_entry(
    settings: HubSettings,
    agreement: Agreement,
    publication: str,
    period: Period,
    revision: int,
    cells: Sequence[Cell],
    at: datetime,
    forced: bool,
    who: Who | None,
    withheld: Iterable[tuple[str, str]],
    *,
    status: str = "PUBLISHED",
    staged_by: str | None = None,
    staged_id: str | None = None,
) -> dict[str, Any]:
    """A release's ``RELEASE`` entry on the audit trail (``hub.audit``): published (its id
    ``release/<publication>/<period start>/r<revision>``), staged or rejected."""
    withheld_cells = [c for c in cells if c.suppressed]
    kinds = Counter(c.suppression for c in withheld_cells)
    detail = {
        "publication": publication,
        "topic": settings.topic(agreement.schedule(publication).topic),
        "period_start": period[0],
        "period_end": period[1],
        "revision": revision,
        "forced": forced,
        "cells": len(cells),
        "published": len(cells) - len(withheld_cells),
        "suppressed_primary": kinds[Suppression.PRIMARY],
        "suppressed_secondary": kinds[Suppression.SECONDARY],
        # Hidden for what the topic already holds: no reason of their own.
        "suppressed_linked": kinds[Suppression.NONE],
        "withheld": [f"{m} by {d}" for m, d in withheld],
        "status": status,
        "staged_by": staged_by,
        "staged_id": staged_id,
    }
    if status == "PUBLISHED":
        id = audit.release_id(publication, period[0], revision)
    else:  # each staging and rejection an entry of its own
        id = f"{staged_id}/{status.lower()}/{uuid.uuid4().hex[:12]}"
    return audit.entry(
        "RELEASE",
        agreement.partnership,
        settings,
        detail,
        id=id,
        at=at,
        reason=None if who is None else (who.reason or None),
        user=None if who is None else who.account,
        principal=None if who is None else who.principal,
    )


def staged_entry(
    settings: HubSettings,
    agreement: Agreement,
    staged: Staged,
    status: str,
    at: datetime,
    who: Who | None,
) -> dict[str, Any]:
    """The ``RELEASE`` entry of a staged release: staged, rejected or, approved, published."""
    return release_entry(
        settings, agreement, staged.publication, staged.period, staged.revision, staged.cells,
        at, staged.forced, who, staged.withheld,
        status=status, staged_by=staged.staged_by, staged_id=staged.id,
    )  # fmt: skip


def secured_cells(
    cells: Sequence[Cell],
    publication: str,
    period: Period,
    revision: int,
    released: Sequence[LinkedRelease],
    rule: DisclosureRule,
) -> tuple[list[Cell], list[CellKey], tuple[tuple[str, str], ...]]:
    """`cells` with what `released` (everything a reader of the topic has) would let a
    reader work out hidden too (``hub.linked``); the cells hidden for it, and the
    breakdowns withheld whole."""
    candidate = LinkedRelease(
        publication,
        period[0],
        period[1],
        revision,
        {(c.measure, c.dimension, c.value): c.count for c in cells},
    )
    secured = secure_release(candidate, released, rule)
    shown = secured.release.cells
    out = [
        replace(c, count=n, suppressed=n is None)
        for c in cells
        for n in (shown[c.measure, c.dimension, c.value],)
    ]
    return out, list(secured.linked_suppressions), tuple(secured.withheld)


def cell_messages(
    codec: Codec,
    partnership: str,
    topic: str,
    publication: str,
    period: Period,
    revision: int,
    cells: Iterable[Cell],
    at: datetime,
) -> list[tuple[str, bytes, bytes | None]]:
    """A release's cells as (topic, key, value) messages of its publication topic."""
    messages: list[tuple[str, bytes, bytes | None]] = []
    for cell in cells:
        snapshot = TrendSnapshot(
            partnership=partnership,
            publication=publication,
            period_start=period[0],
            period_end=period[1],
            measure=cell.measure,
            dimension=cell.dimension,
            value=cell.value,
            count=cell.count,
            suppressed=cell.suppressed,
            revision=revision,
            published_at=at.astimezone(UTC),
        )
        messages.append(
            (topic, cell_key(publication, period, cell), codec.encode(snapshot.to_avro()))
        )
    return messages


def audit_message(topic: str, entry: Mapping[str, Any]) -> tuple[str, bytes, bytes | None]:
    key, value = audit.encode(entry)
    return topic, key, value


def transact(
    producer: KafkaProducer,
    messages: Sequence[tuple[str, bytes, bytes | None]],
    what: str,
    abort: Callable[[], None],
) -> None:
    """Send `messages` in one transaction: all visible to read_committed readers, or none."""
    try:
        producer.begin_transaction()
        futures = [producer.send(topic, key=key, value=value) for topic, key, value in messages]
        producer.commit_transaction()
        for future in futures:
            future.get(timeout=0)
    except KafkaError as exc:
        abort()
        raise PublishError(
            f"Kafka did not take {what} with its audit entry: {exc}; nothing of it is"
            " visible, and it will be sent again at the next run (a topic missing? run `hub"
            " topics apply`)"
        ) from exc
