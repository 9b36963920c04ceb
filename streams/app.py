"""The Faust app: consume every agency topic, keep each record's current version,
link children across agencies, and make it all durable in batches.

Exactness without a state write per event:

1. Each event's version is applied to the in-memory ``PartitionState`` of its
   partition (dedup, corrections, withdrawals, linkage, counts).
2. Events are consumed without automatic acknowledgement. Every
   ``batch_size`` events of a partition, and at least every
   ``flush_interval`` seconds, the versions that changed are written as one
   message to partition p of the record-versions changelog (the changelog
   topic of the Faust table ``record-versions``), and only then are the
   batch's events acknowledged.
   Each batch also records, per agency topic, the last offset of the partition
   applied, which is what the publisher waits for; so no event is applied
   while an earlier offset of its partition is missing (Faust can skip one: its
   stream drops events it takes while a rebalance or a recovery is under way):
   the partition is read again from the missing offset first
   (``streams.consumer.InOrder``).
3. Faust commits an offset only for acknowledged events, and flushes its
   producer before committing, so a committed offset always has every
   version it produced on the changelog. After a SIGKILL or a rebalance, the
   partition's new owner recovers the table (every batch ever written for
   the partition), merges the batches into memory (an order-free,
   idempotent fold: highest version per record), and re-reads the events
   after the committed offset. An event whose batch was written but not
   committed is seen again and dropped as a duplicate.
4. The changelog is compacted: once the batches written since a partition's
   last snapshot reach that snapshot's size, the worker writes a new snapshot
   of the partition and then tombstones every key it covers
   (``streams.changelog``), so the changelog grows with the records, not with
   every version ever written.
5. Retention (``streams.retention``): an event whose version was shared
   longer ago than the agreement's ``case_events_days`` is never counted;
   at start, after each recovery and each UTC day, the worker removes the
   records that passed it from every partition it owns and writes a
   snapshot without them, whose tombstones remove every earlier message that
   held them from the changelog (and from Faust's local copy of it).

The publisher (``streams.publish.publisher``) reads the same changelog, so published
counts are computed from exactly the durable state.

A message that is not a plausible case event of its topic's agency never
stops the agent: it is refused under one reason (``streams.checks``),
counted and acknowledged. A message written with a schema this worker does
not ship (a newer one) is copied to the deferred topic before it is
acknowledged, and waits there for ``hub streams replay-deferred``
(``streams.deferred``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import faust
from faust.auth import SASLCredentials, SSLCredentials
from faust.types import TP, AppT, EventT, StreamT
from faust.types.auth import CredentialsT

from hub.agreement.model import Agreement
from hub.codec import Codec
from hub.errors import CodecError, ImplausibleValueError, UnknownSchemaError
from hub.kafka.client import min_insync
from hub.kafka.security import ClientConfig, client_config
from hub.settings import HubSettings
from streams import consumer
from streams.changelog import PartitionLog, partition_of
from streams.checks import Bounds, Reason
from streams.deferred import deferred_headers
from streams.metrics import WorkerMetrics
from streams.records import RECORD_VERSIONS_TABLE, RecordVersion, decode_batch, encode_batch
from streams.retention import cutoff, expired
from streams.state import WorkerState

log = logging.getLogger(__name__)


#: The RocksDB options of the Faust table's store: one database per partition, read
#: once at recovery, so small memtables and a small cache.
TABLE_ROCKSDB = {
    "write_buffer_size": 4 * 1024 * 1024,
    "max_write_buffer_number": 2,
    "target_file_size_base": 16 * 1024 * 1024,
    "block_cache_size": 4 * 1024 * 1024,
    "block_cache_compressed_size": 4 * 1024 * 1024,
}


@dataclass
class Pending:
    """What one partition has applied in memory but not yet written and acknowledged."""

    versions: list[RecordVersion] = field(default_factory=list)
    events: list[EventT[bytes]] = field(default_factory=list)
    read: dict[str, int] = field(default_factory=dict)  # topic -> last offset in the batch


def release_freed_memory() -> None:
    """Collect, then hand the C heap's free pages back to the system (glibc's
    ``malloc_trim``), so a recovered worker's memory is its state, not the peak of
    reading its changelog. Nothing where there is no glibc."""
    gc.collect()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


#: Seconds between the worker's checks for a new retention day (``Worker.sweep``).
SWEEP_EVERY = 60.0


#: Allocations between the collector's youngest-generation passes (Python's default:
#: 700). An event allocates a few dozen objects that die with its batch.
COLLECT_EVERY = 20_000


def settle_collector() -> None:
    """What the worker holds once recovered (Faust, its clients, the schemas) lives as
    long as the process: full collections skip it from here on, and the youngest
    generation is collected less often."""
    gc.freeze()
    gc.set_threshold(COLLECT_EVERY, *gc.get_threshold()[1:])


def broker_url(bootstrap: str) -> str:
    return ";".join(f"kafka://{server.strip()}" for server in bootstrap.split(","))


def broker_credentials(config: ClientConfig) -> CredentialsT | None:
    """Faust's credentials for the hub's client configuration (None: PLAINTEXT)."""
    context = config.ssl_context()  # None without TLS
    if config.sasl:
        return SASLCredentials(
            username=config.username,
            password=None if config.password is None else config.password.get_secret_value(),
            mechanism=config.mechanism,
            ssl_context=context,
        )
    if context is not None:
        return SSLCredentials(context)
    return None


def faust_app(settings: HubSettings) -> faust.App:
    """The worker's Faust app, connecting with the hub's client configuration, delivering
    each fetched batch in one step and committing only runs of offsets that start at the
    committed one (``streams.consumer``, ``streams.commits``)."""
    app = faust.App(
        settings.worker_app_id,
        broker=broker_url(settings.bootstrap_servers),
        broker_credentials=broker_credentials(client_config(settings)),
        store=settings.store,
        datadir=str(settings.worker_data),
        autodiscover=False,
        web_enabled=False,
        topic_partitions=settings.case_partitions,
        topic_replication_factor=settings.replication_factor,
        # Recovery rebuilds from the changelog; a standby copy would only cost memory.
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=max(1.0, settings.session_timeout / 10),
        # Static membership (HUB_WORKER_INSTANCE_ID): a restarted worker rejoins as itself.
        consumer_group_instance_id=settings.worker_instance_id,
        # The stream takes what is already in its buffer without awaiting it.
        cython_optimizations=True,
    )
    return consumer.batched(app)


class Worker:
    """The record-versions agent, its changelog batches and its recovery."""

    def __init__(
        self,
        settings: HubSettings,
        agreement: Agreement,
        metrics: WorkerMetrics,
        state: WorkerState,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        on_submission: Callable[[str, float], None] | None = None,
    ) -> None:
        self.app = app = faust_app(settings)
        self.state = state
        #: The memory store keeps what Faust reads of the changelog in this process, on
        #: top of the state, so recovery drops it once merged; RocksDB keeps it on disk.
        self.in_memory = settings.store.startswith("memory")
        self.metrics = metrics
        self.batch_size = batch_size
        self.on_submission = on_submission
        self.positions: dict[TP, int] = {}  # last offset read per agency-topic partition
        # Every partition's events applied without a hole, whatever Faust skips.
        self.in_order = consumer.InOrder(app, self.applied, on_gap=metrics.rereads.inc)
        self.read_count = 0  # events read since start (the watchdog's sign of life)
        self.recoveries = 0  # recoveries completed since start (the watchdog's too)
        self.codec = Codec("case_event", settings.schemas_dir)
        self.pending: dict[int, Pending] = {}
        self.logs: dict[int, PartitionLog] = {}  # per owned partition, its changelog
        self.snapshot_bytes = settings.changelog_snapshot_bytes
        self.retention_days = agreement.retention.case_events_days
        state.since = self.retention_since()
        #: Partitions whose changelog may hold versions past retention: each gets a
        #: snapshot without them at the next sweep.
        self.to_sweep: set[int] = set()
        self.swept = ""  # the retention day of the last sweep
        self.snapshotting: set[int] = set()
        self.writer = uuid.uuid4().hex[:12]
        self.sequence = 0
        # An event's agency is the topic it arrived on, whatever its body says: the case
        # topic of each partner in the agreement (the one its ACLs let it write).
        self.agency_of = {settings.topic(p.topic): p.id for p in agreement.partners}
        self.topics = set(self.agency_of)
        # True until this worker's partitions are read back from the changelog, and again
        # from each rebalance until they are.
        self.recovering = True
        self.deferred_count = 0
        self.settled = False  # the garbage collector, after the first recovery
        # What is plausible, worked out again each second (streams.checks).
        self.bounds = Bounds.at(datetime.now(UTC))
        self.bounds_until = time.monotonic() + 1.0
        self.deferred_topic = app.topic(
            settings.deferred_topic,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )
        source = consumer.raw_topic(app, *sorted(self.topics))
        # Values are batches of record versions, keyed "<partition>:<writer>:<sequence>".
        self.table = app.Table(
            RECORD_VERSIONS_TABLE,
            default=None,
            partitions=settings.case_partitions,
            key_type=str,
            # Batches are JSON written and read by streams.records (encode_batch,
            # decode_batch): as bytes, the table passes them through undecoded.
            value_type=bytes,
            # Faust's RocksDB defaults (three 64 MiB memtables and a 2 GiB block cache,
            # per partition) would hold what recovery reads in memory all the same.
            options=TABLE_ROCKSDB if settings.store.startswith("rocksdb") else None,
            # Faust creates the changelog with HUB_REPLICATION_FACTOR replicas; acks=all
            # then waits for as many in sync as every topic the hub declares.
            extra_topic_configs={"min.insync.replicas": min_insync(settings.replication_factor)},
        )
        self.table.on_recover(self.recovered)
        app.on_partitions_revoked.connect(self.revoked)  # type: ignore[arg-type]
        app.on_partitions_assigned.connect(self.assigned)  # type: ignore[arg-type]
        app.agent(source, name="record-versions")(self.process)
        app.timer(flush_interval)(self.flush_all)
        app.timer(SWEEP_EVERY)(self.sweep)

    def applied(self, tp: TP) -> int | None:
        """The last offset of `tp` the changelog records as applied (None: none)."""
        kept = self.logs.get(tp.partition)
        return None if kept is None else kept.read.get(tp.topic)

    async def flush(self, partition: int) -> None:
        """Write the partition's changed versions as one changelog message, then ack."""
        batch = self.pending.pop(partition, None)
        if batch is None:
            return
        kept = self.logs.setdefault(partition, PartitionLog())
        if batch.events:
            # Written even when nothing changed (only replays): it records how far
            # the partition's events are applied, which the publisher waits for.
            self.sequence += 1
            key = f"{partition}:{self.writer}:{self.sequence}"
            value = encode_batch(batch.versions, batch.read)
            await self.table.changelog_topic.send(key=key, value=value, partition=partition)
            kept.wrote(key, len(value), batch.read)
            self.metrics.batches.inc()
        for event in batch.events:
            event.ack()
        if kept.due(self.snapshot_bytes) and not self.recovering:
            await self.snapshot(partition)

    async def snapshot(self, partition: int) -> None:
        """Write every record of the partition as a snapshot, then tombstone the keys
        it covers once each chunk is acknowledged (``streams.changelog``)."""
        state = self.state.partitions.get(partition)
        kept = self.logs.get(partition)
        if state is None or kept is None or partition in self.snapshotting:
            return
        self.snapshotting.add(partition)
        try:
            self.sequence += 1
            written = kept.written
            snapshot = kept.snapshot_of(partition, f"{self.writer}:s{self.sequence}")
            topic = self.table.changelog_topic
            # One chunk in memory at a time; the records as they were when it began (a
            # RocksDB iterator's view), or newer (harmless: higher versions).
            sent = [
                await topic.send(key=key, value=value, partition=partition)
                for key, value in snapshot.chunks(state.records.values())
            ]
            for delivery in sent:
                await delivery  # on the broker before any key it replaces is deleted
            for key in snapshot.tombstones():
                await topic.send(key=key, value=None, partition=partition)
                # Faust's local copy of the changelog (its RocksDB store) too: the next
                # recovery would delete it on reading the tombstone; this is at once.
                self.table.data.pop(key, None)
            kept.replaced(snapshot, written)
            self.metrics.snapshots.inc()
        finally:
            self.snapshotting.discard(partition)

    def retention_since(self) -> str:
        """Versions shared before this day (ISO) have passed retention."""
        return cutoff(datetime.now(UTC).date(), self.retention_days)

    async def sweep(self) -> None:
        """Once a UTC day, and after each recovery: remove the records past retention
        from every owned partition, and write a snapshot of each partition that held
        any (its tombstones remove them from the changelog)."""
        if self.recovering:
            return
        since = self.state.since = self.retention_since()
        if since == self.swept and not self.to_sweep:
            return
        due = set(self.to_sweep) if since == self.swept else set(self.state.partitions)
        for partition in sorted(due):
            state = self.state.partitions.get(partition)
            if state is None:  # no longer this worker's: its new owner sweeps it
                self.to_sweep.discard(partition)
                continue
            await self.flush(partition)  # what is pending goes into the snapshot's cover
            gone = state.expire(since)
            if gone:
                self.metrics.expired.inc(gone)
                log.info("partition %d: %d records past retention removed", partition, gone)
            if gone or partition in self.to_sweep:
                await self.snapshot(partition)
            if partition not in self.snapshotting:
                self.to_sweep.discard(partition)
        self.swept = since

    async def flush_all(self) -> None:
        for partition in list(self.pending):
            await self.flush(partition)

    async def recovered(self) -> None:
        """After recovery: keep the partitions this worker still owns, rebuild the others.

        Faust has read into the table what is new on the changelog of each partition
        this worker owns: the whole of a partition newly assigned, and for one it kept
        through the rebalance what was written since the last recovery (its own
        batches). A partition held is brought up to date with that (merging is
        idempotent); one not held is built from it. With the memory store the batches
        are then dropped from the table, so a restarted worker does not hold its state
        twice (Faust reads a partition from the start whenever it is assigned anew).
        """
        actives = {
            tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic in self.topics
        }
        for partition in [p for p in self.pending if p not in actives]:
            del self.pending[partition]  # unacknowledged: their events go to the new owner
        self.state.keep_only(actives)
        missing = actives - set(self.state.partitions)
        for partition in missing:
            self.state.partition(partition)
            self.logs[partition] = PartitionLog()
        for partition in [p for p in self.logs if p not in actives]:
            del self.logs[partition]
        read = self._read_back(actives, missing)
        if self.in_memory:
            for key in read:
                self.table.data.pop(key, None)
        if missing:
            release_freed_memory()  # what decoding the changelog used is free now
        if not self.settled:
            settle_collector()  # once: what a later rebalance leaves is collected as usual
            self.settled = True
        log.info("record versions recovered for partitions %s", sorted(missing))
        self.recovering = False
        self.recoveries += 1
        try:
            await self.sweep()  # what passed retention while the partitions were elsewhere
        except Exception as exc:  # the timer sweeps again; recovery itself is done
            log.warning("removing the records past retention failed (tried again): %s", exc)

    def _read_back(self, actives: set[int], missing: set[int]) -> list[Any]:
        """Merge what the table holds for `actives` into the partitions `missing` (and,
        with the memory store, into every one); the keys read."""
        read: list[Any] = []
        # Each batch is merged as it is read (nothing here awaits, so the table does
        # not change meanwhile): the batches are never all in memory at once.
        for key, value in self.table.data.items():
            partition = partition_of(str(key))
            if partition not in actives:
                continue
            read.append(key)
            if value is None:
                continue
            if partition in missing or self.in_memory:
                # Records on disk are written as they are read: nothing to share.
                versions, offsets = decode_batch(value, share=self.in_memory)
                left = self.state.partitions[partition].merge(versions, self.state.since)
                if left:  # the changelog holds versions past retention: swept next
                    self.metrics.expired.inc(left)
                    self.to_sweep.add(partition)
                # Only a key whose versions are in the state may be replaced by its
                # snapshot (and tombstoned); one not merged here is left on the changelog.
                self.logs.setdefault(partition, PartitionLog()).recovered(
                    str(key), len(value), offsets
                )
        return read

    async def assigned(self, sender: AppT, assigned: set[TP], **_: Any) -> None:
        self.recovering = True  # until recovered() has rebuilt what is new

    async def revoked(self, sender: AppT, revoked: set[TP], **_: Any) -> None:
        """Faust has waited for in-flight events: write what they changed. The state
        is kept until recovery says which partitions this worker still owns (a
        rebalance revokes every partition, and most come back)."""
        self.recovering = True
        for partition in {tp.partition for tp in revoked}:
            await self.flush(partition)
        for tp in revoked:
            self.positions.pop(tp, None)  # the next owner's commits say how far it is read
        self.in_order.revoked(revoked)

    async def process(self, stream: StreamT[bytes]) -> None:
        # A coroutine, not a generator: nothing is yielded per event, so Faust has no
        # per-event result to handle.
        event: EventT[bytes]
        # Acknowledged by flush(), after the batch is on the changelog. Set on this
        # stream rather than through noack(), which chains a second stream per event.
        stream.enable_acks = False
        async for event in stream.events():
            await self.take(event)
            for waiting in consumer.delivered(self.app, stream):
                await self.take(waiting)

    async def take(self, event: EventT[bytes]) -> None:
        """Apply one event to its partition's state; flush the partition's batch when full.
        An event that comes before an earlier one of its partition was applied is left to
        be read again (``streams.consumer.InOrder``)."""
        message = event.message
        if not await self.in_order.admit(message):
            return
        self.metrics.consumed.inc()
        self.read_count += 1
        self.positions[message.tp] = message.offset
        partition = message.partition
        batch = self.pending.get(partition)
        if batch is None:
            batch = self.pending[partition] = Pending()
        batch.events.append(event)
        batch.read[message.topic] = message.offset
        try:
            version = self.version_of(event)
        except UnknownSchemaError as exc:  # most likely newer than this worker: kept
            await self.defer(event, str(exc))
            version = None
        if version is not None and expired(version, self.state.since):
            self.metrics.count("expired")  # past retention already: never counted
        elif version is not None:
            kind = self.state.partition(partition).apply(version)
            self.metrics.count(kind)
            if kind not in ("duplicate", "stale"):
                batch.versions.append(version)
        if len(batch.events) >= self.batch_size:
            await self.flush(partition)

    def version_of(self, event: EventT[bytes]) -> RecordVersion | None:
        """The event's record version; None when it is refused. Raises only
        ``UnknownSchemaError`` (the event is to be deferred): poison is counted and
        acknowledged, not retried."""
        message = event.message
        agency = self.agency_of.get(message.topic)
        if event.value is None:
            self.refuse(event, "tombstone", "no value (a tombstone)")
            return None
        try:
            record = self.codec.decode(event.value)
        except UnknownSchemaError:  # a CodecError, but deferred by take(), not refused
            raise
        except ImplausibleValueError as exc:
            self.refuse(event, "implausible", str(exc))
            return None
        except CodecError as exc:
            self.refuse(event, "undecodable", str(exc))
            return None
        except Exception as exc:  # any poison is refused, not retried
            self.refuse(event, "undecodable", type(exc).__name__)
            return None
        try:
            if record.get("agency_id") != agency:
                self.refuse(event, "wrong_agency", "the body names another agency")
                return None
            field = self.plausible().implausible(record)
            if field is not None:
                self.refuse(event, "implausible", f"{field} out of the plausible range")
                return None
            version = RecordVersion.from_event(record)
        except Exception as exc:  # a record the hub cannot use is refused
            self.refuse(event, "undecodable", type(exc).__name__)
            return None
        if self.on_submission is not None and agency is not None:
            self.on_submission(agency, message.timestamp)
        return version

    def plausible(self) -> Bounds:
        """What is plausible now, worked out again at most once a second."""
        if time.monotonic() >= self.bounds_until:
            self.bounds = Bounds.at(datetime.now(UTC))
            self.bounds_until = time.monotonic() + 1.0
        return self.bounds

    def refuse(self, event: EventT[bytes], reason: Reason, why: str) -> None:
        """Count and log a refused message (where it is, never what it holds)."""
        message = event.message
        self.metrics.reject(reason)
        log.warning(
            "rejected %s[%s]@%s (%s): %s",
            message.topic,
            message.partition,
            message.offset,
            reason,
            why,
        )

    async def defer(self, event: EventT[bytes], why: str) -> None:
        """Copy an event written with a schema this worker lacks to the deferred topic.

        Acknowledged (with its batch) only after the copy is sent: Faust flushes its
        producer before it commits, as for the changelog batches."""
        message = event.message
        await self.deferred_topic.send(
            key=message.key,
            value=event.value,
            headers=deferred_headers(message.topic, message.partition, message.offset, message.key),
        )
        self.metrics.defer()
        self.deferred_count += 1
        log.warning(
            "deferred %s[%s]@%s: %s; %d deferred by this worker so far, waiting on %s: upgrade"
            " the hub (HUB_SCHEMAS_DIR / a new release), then run `hub streams replay-deferred`",
            message.topic,
            message.partition,
            message.offset,
            why,
            self.deferred_count,
            self.deferred_topic.get_topic_name(),
        )
