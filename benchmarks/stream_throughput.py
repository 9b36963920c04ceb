"""Stream throughput: events/s through the stream worker, beside a raw consumer, a bare agent
and Quix Streams doing the worker's job.

Run from the repository root::

    .venv/bin/python -m benchmarks.stream_throughput [--events 200000] [--subjects 50000]

It starts its own Kafka broker (temporary state directory, free ports; stopped
at the end, also on error) unless ``--bootstrap`` names one that answers,
applies the hub's topics under a fresh namespace, and produces N realistic
encoded case events (built as ``CaseEvent``, keyed by subject pseudonym, about
5 % byte-for-byte replays, a few corrections and withdrawals) to the agency
topics. Then, in the same run, each reading all N events from the start:

(a) a raw aiokafka consumer (no group) that only decodes each value with
    ``Codec`` (this process);
(b) a stateless Faust agent that only decodes each event, reading as the worker
    reads (``streams.consumer``: the worker's app, its topic of bytes, the buffer
    taken in one step, acknowledged per event; a child process, its own app id:
    ``--role stateless``);
(b0) the same agent as Faust's documentation writes one, on Faust's own consumer and
    stream (``async for value in stream``; ``--role stock``), the (b) of earlier runs;
(c) the full pipeline, ``streams.app.Worker`` as ``hub streams worker``
    builds it (default batch size and flush interval, the timeliness hook),
    in a child process (``--role pipeline``): from the first event to the
    N-th consumed, to the last batch written to the changelog and acked, and
    to the consumer group's committed offsets covering all N;
(d) the peer: a Quix Streams application doing (c)'s job as Quix does it
    (a child process, ``--role quix``, its own consumer group): per agency
    topic a stateful ``sdf.update`` that decodes as (b) does, builds
    ``RecordVersion.from_event`` and keeps, in the message key's (the
    subject's) state in RocksDB with its changelog topic, each record's
    current version (``streams.records.classify``: duplicates and stale
    versions dropped, corrections and withdrawals retract and add) and a live
    count per risk code. Timed to the N-th event processed and to the
    group's committed offsets covering all N (the application is stopped
    after the N-th, which commits its checkpoint). Optional: skipped, with a
    message, when quixstreams cannot be imported, or with ``--no-quix``.

Rates are timed inside the consumer, from the first event to the last. It
also reports the resident memory of the (c) process per million subjects
(VmRSS once it holds the state minus VmRSS before it consumed anything,
scaled; the growth from its first event too) and, as a second figure, the
RSS growth of a fresh process while one
``PartitionState`` takes in 1,000,000 record versions decoded from real
events (``--role state-memory``).

Targets (from the issue): (c) >= 90 % of (b) and (c) >= (d); (c) >= 5,000
events/s per worker (stretch 10,000). Nothing is asserted; the figures are reported,
with the ratios c/b and c/d.
See docs/benchmarks.md for the figures measured on the project machine.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import gc
import io
import json
import logging
import os
import pstats
import random
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adapters.publishers.base import partition_key
from adapters.synth.cases import DISTRICTS, EVENT_TYPES, OUTCOMES, RISK_WEIGHTS
from hub.agreement.model import Agreement, load_agreement
from hub.codec import Codec
from hub.kafka.client import broker_answers
from hub.kafka.security import client_config
from hub.models import CaseEvent, LinkageBasis, Pseudonym
from hub.ops.broker import Broker
from hub.ops.topics import apply_topics, declared_topics
from hub.settings import HubSettings

if TYPE_CHECKING:
    from streams.records import RecordVersion

#: The checkout: the benchmark's child processes run `python -m benchmarks...` from here.
REPO_ROOT = Path(__file__).resolve().parent.parent
RATIO_TARGET = 0.90
RATE_TARGET = 5_000.0
RATE_STRETCH = 10_000.0
STATE_RECORDS = 1_000_000

#: Agency id -> (agency type, share of the events).
AGENCIES: dict[str, tuple[str, int]] = {
    "camhs": ("CAMHS", 18),
    "spa": ("CHILDRENS_SOCIAL_CARE", 22),
    "police": ("POLICE", 16),
    "school-nursing": ("SCHOOL_NURSING", 10),
    "counselling": ("COUNSELLING", 8),
    "youth-service": ("YOUTH_SERVICE", 7),
    "relationships": ("RELATIONSHIPS_SERVICE", 4),
    "education": ("EDUCATION", 10),
    "voluntary": ("VOLUNTARY_SECTOR", 5),
}
AGE_BANDS = ("5-7", "8-10", "11-13", "11-13", "14-15", "14-15", "16-17", "18-25", "unknown")
VULNERABILITIES = ("SEN", "LOOKED_AFTER", "YOUNG_CARER", "NOT_IN_EDUCATION", "MENTAL_HEALTH_NEED")
PLATFORMS = ("SOCIAL_NETWORK", "MESSAGING", "LIVESTREAMING", "ONLINE_GAMING", "VIDEO_SHARING")
ROLES = ("VICTIM", "VICTIM", "VICTIM", "PERPETRATOR", "BOTH", "UNKNOWN")


def say(message: str) -> None:
    # The original stderr: a Faust worker redirects sys.stderr to its logger.
    print(message, file=sys.__stderr__, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kb(pid: int | str = "self") -> int:
    """VmRSS of a process, in KiB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


# --- the events ------------------------------------------------------------------
@dataclass
class Produced:
    """What goes on the topics, in order, and what the worker should make of it."""

    messages: list[tuple[str, bytes, bytes]] = field(default_factory=list)  # topic, key, value
    kinds: Counter[str] = field(default_factory=Counter)  # new / duplicate / stale / ...
    replays: int = 0
    subjects: set[str] = field(default_factory=set)


def hex64(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


def make_events(settings: HubSettings, count: int, subjects: int, seed: int = 5) -> Produced:
    """`count` encoded case events over `subjects` children, in production order.

    About 5 % are replays of an earlier event's bytes, 1.5 % corrections (a
    higher record_version), 1.5 % withdrawals, 3 % have no linkable subject
    (keyed by record key, as the adapter does).
    """
    rng = random.Random(seed)
    codec = Codec("case_event")
    bases = ("NHS_NUMBER",) * 6 + ("NAME_DOB",) * 3 + ("LOCAL_ID",)
    pool = [(hex64(rng), rng.choice(bases)) for _ in range(subjects)]
    names = list(AGENCIES)
    shares = [AGENCIES[a][1] for a in names]
    codes, weights = zip(*RISK_WEIGHTS.items(), strict=True)
    out = Produced()
    latest: dict[str, dict[str, Any]] = {}  # record key -> its latest version's fields
    record_keys: list[str] = []
    # record key -> (version, content) the worker holds; content: (event type, outcome), the
    # only fields of a record's RecordVersion that its versions here change
    held: dict[str, tuple[int, tuple[str, str]]] = {}
    sent: list[tuple[str, bytes, bytes, str, int, tuple[str, str]]] = []
    reported = datetime(2026, 11, 1, tzinfo=UTC)
    step = max(count // 10, 1)

    def emit(fields: dict[str, Any]) -> None:
        event = CaseEvent(**fields)
        topic = settings.case_topic(event.agency_id)
        value = codec.encode(event.to_avro())
        content = (str(event.event_type), str(event.outcome))
        key, version = event.record_key, event.record_version
        sent.append((topic, partition_key(event), value, key, version, content))
        classify(out, held, key, version, content)
        if event.subject is not None:
            out.subjects.add(event.subject.value)

    while len(sent) < count:
        if len(sent) % step == 0:
            say(f"  built {len(sent):,} of {count:,} events ...")
        roll = rng.random()
        if sent and roll < 0.05:  # a replay, byte for byte
            topic, key, value, record_key, version, content = rng.choice(sent)
            sent.append((topic, key, value, record_key, version, content))
            classify(out, held, record_key, version, content)
            out.replays += 1
            continue
        if record_keys and roll < 0.08:  # a correction or a withdrawal of an earlier record
            fields = dict(latest[rng.choice(record_keys)])
            fields["record_version"] += 1
            fields["event_id"] = hex64(rng)
            # Later, but never after the generator's "now": the worker refuses a reported_at
            # more than two days ahead of its clock (streams.checks.implausible).
            later = fields["reported_at"] + timedelta(days=rng.randrange(1, 30))
            fields["reported_at"] = min(later, reported)
            if roll < 0.065:
                fields["event_type"] = "WITHDRAWN"
            else:
                fields["event_type"] = rng.choice(EVENT_TYPES)
                fields["outcome"] = rng.choice(OUTCOMES)
            latest[fields["record_key"]] = fields
            emit(fields)
            continue
        agency = rng.choices(names, shares)[0]
        pseudonym, basis = rng.choice(pool)
        subject = (
            None
            if rng.random() < 0.03
            else Pseudonym(value=pseudonym, key_id="k1", basis=LinkageBasis(basis))
        )
        shared = reported - timedelta(seconds=rng.randrange(30 * 86_400))
        # Never after it was reported (beyond clock skew the worker refuses it,
        # streams.checks): some recorded late.
        occurred = date(2026, 1, 1) + timedelta(days=rng.randrange(300))
        occurred = min(occurred, shared.date() - timedelta(days=rng.randrange(3)))
        online = rng.choices(("YES", "NO", "NOT_ASSESSED"), (70, 10, 20))[0]
        risks = sorted(set(rng.sample(codes, k=rng.choice((1, 1, 1, 2)), counts=weights)))
        fields = {
            "event_id": hex64(rng),
            "agency_id": agency,
            "agency_type": AGENCIES[agency][0],
            "event_type": rng.choice(EVENT_TYPES),
            "record_key": hex64(rng),
            "record_version": 1,
            "subject": subject,
            "case": Pseudonym(value=hex64(rng), key_id="k1", basis=LinkageBasis.CASE)
            if rng.random() < 0.5
            else None,
            "occurred_on": occurred,
            "reported_at": shared,
            "age_band": rng.choice(AGE_BANDS),
            "sex": rng.choice(("FEMALE", "MALE", "FEMALE", "MALE", "UNKNOWN")),
            "area_code": f"{rng.choice(DISTRICTS)} {rng.randrange(10)}",
            "vulnerabilities": tuple(
                sorted(rng.sample(VULNERABILITIES, k=rng.choice((0, 0, 0, 1, 1, 2))))
            ),
            "threshold_level": rng.choice((None, 1, 2, 2, 3, 3, 4)),
            "online_component": online,
            "online_risks": tuple(risks) if online == "YES" else (),
            "platform_types": tuple(sorted(rng.sample(PLATFORMS, k=rng.choice((0, 1, 1, 2))))),
            "role": rng.choice(ROLES),
            "outcome": rng.choice(OUTCOMES),
        }
        latest[fields["record_key"]] = fields
        record_keys.append(fields["record_key"])
        emit(fields)
    out.messages = [(topic, key, value) for topic, key, value, *_ in sent]
    return out


def classify(
    out: Produced,
    held: dict[str, tuple[int, tuple[str, str]]],
    record_key: str,
    version: int,
    content: tuple[str, str],
) -> None:
    """What the worker must count this event as (a record's events stay in order), as
    streams.records.classify does: a higher version with the held content is a replay."""
    live = content[0] != "WITHDRAWN"
    before = held.get(record_key)
    if before is None:
        kind = "new" if live else "withdrawal"
    elif version < before[0]:
        kind = "stale"
    elif version == before[0]:
        kind = "duplicate"
    elif content == before[1]:
        kind = "replay"
    else:
        kind = "correction" if live else "withdrawal"
    if before is None or version > before[0]:
        held[record_key] = (version, content)
    out.kinds[kind] += 1


def produce(settings: HubSettings, messages: Sequence[tuple[str, bytes, bytes]]) -> float:
    """Send every message (acks=all); seconds taken."""
    from confluent_kafka import KafkaError, Message, Producer

    producer = Producer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "client.id": "bench-stream-loader",
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 20,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
            # The Java client's and kafka-python's partitioner, so a subject's events
            # land on the same partition number on every agency topic.
            "partitioner": "murmur2_random",
            **client_config(settings).librdkafka(),
        }
    )
    failed: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, _message: Message[bytes, bytes]) -> None:
        if error is not None:
            failed.append(error)

    start = time.perf_counter()
    step = max(len(messages) // 10, 1)
    for index, (topic, key, value) in enumerate(messages):
        if index % step == 0:
            say(f"  produced {index:,} of {len(messages):,} ...")
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(120)
    took = time.perf_counter() - start
    if remaining or failed:
        raise RuntimeError(f"producing: {len(failed)} failed, {remaining} still queued")
    return took


def end_offsets(settings: HubSettings) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, **client_config(settings).kafka_python()
    )
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in case_topics(settings)
            for p in consumer.partitions_for_topic(topic) or ()
        ]
        return int(sum(consumer.end_offsets(partitions).values()))
    finally:
        consumer.close()


@functools.cache
def partnership(path: Path) -> Agreement:
    """The agreement at `path` (HUB_AGREEMENT), loaded once per process."""
    return load_agreement(path)


def check_partners(agreement: Agreement) -> None:
    """The events are made for AGENCIES: they must be the agreement's partners."""
    partners = {p.id: str(p.type) for p in agreement.partners}
    made_for = {agency: kind for agency, (kind, _) in AGENCIES.items()}
    if partners != made_for:
        raise SystemExit(
            f"the agreement's partners {partners} are not the agencies this benchmark"
            f" makes events for {made_for}; point HUB_AGREEMENT at the example agreement"
        )


def case_topics(settings: HubSettings) -> list[str]:
    """The case topics of the agreement's partners, as the worker subscribes to them."""
    return [settings.topic(topic) for topic in partnership(settings.agreement).case_topics]


# --- (a) raw aiokafka ---------------------------------------------------------------
@dataclass
class Timing:
    """A consumer's own view: wall times (time.time) and CPU times of its process."""

    events: int
    first: float
    last: float
    cpu: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def wall(self) -> float:
        return self.last - self.first

    @property
    def rate(self) -> float:
        return self.events / self.wall if self.wall > 0 else float("inf")


async def raw_consume(settings: HubSettings, count: int) -> Timing:
    from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped]

    consumer = AIOKafkaConsumer(
        *case_topics(settings),
        bootstrap_servers=settings.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="bench-raw-aiokafka",
    )
    codec = Codec("case_event")
    decode = codec.decode
    await consumer.start()
    try:
        seen = 0
        first = cpu = 0.0
        next_report = time.monotonic() + 2
        while seen < count:
            batches = await consumer.getmany(timeout_ms=1000)
            if batches and not seen:
                first, cpu = time.time(), time.process_time()
            for records in batches.values():
                for record in records:
                    decode(record.value)
                seen += len(records)
            if time.monotonic() >= next_report:
                say(f"  [raw] {seen:,} of {count:,} decoded ...")
                next_report += 2
        return Timing(seen, first, time.time(), time.process_time() - cpu)
    finally:
        await consumer.stop()


# --- (b) and (c): child processes ------------------------------------------------------
class Clock:
    """Inside a child: counts events, times the first and the target-th, writes the result."""

    def __init__(self, role: str, target: int, result: Path, profile: Path | None) -> None:
        self.role = role
        self.target = target
        self.result = result
        self.count = 0
        self.acked = 0
        self.data: dict[str, Any] = {"role": role, "pid": os.getpid(), "rss_start": rss_kb()}
        self.profile_path = profile
        # CPU time, not wall time: other processes share the two cores.
        self.profiler = cProfile.Profile(time.process_time) if profile else None
        self.state: Callable[[], dict[str, Any]] | None = None  # the pipeline's figures
        # Garbage-collector pauses while consuming: the heap grows with the state.
        self.gc_seconds = 0.0
        self.gc_full = 0
        self._gc_started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if not self.count or "gc_seconds" in self.data:
            return
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_seconds += time.perf_counter() - self._gc_started
            self.gc_full += info["generation"] == 2

    def tick(self) -> None:
        self.count += 1
        if self.count == 1:
            self.data.update(first=time.time(), cpu_first=time.process_time(), rss_first=rss_kb())
            self.data["root_level"] = logging.getLevelName(logging.getLogger().getEffectiveLevel())
            if self.profiler is not None:
                self.profiler.enable()
        if self.count == self.target:
            self.data.update(nth=time.time(), cpu_nth=time.process_time())
            if self.role != "pipeline":  # the pipeline's end is its last acked batch
                self.finish()

    def done(self, events: int) -> None:
        """`events` more were acknowledged (the pipeline's batches)."""
        self.acked += events
        if self.acked >= self.target and "acked" not in self.data:
            self.data.update(acked=time.time(), cpu_acked=time.process_time())
            self.finish()

    def finish(self) -> None:
        if self.profiler is not None and self.profile_path is not None:
            self.profiler.disable()
            self.profiler.dump_stats(str(self.profile_path))
        self.data.update(gc_seconds=self.gc_seconds, gc_full=self.gc_full)
        gc.collect()
        self.data.update(rss_end=rss_kb(), events=self.count)
        if self.state is not None:
            self.data.update(self.state())
        temporary = self.result.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.data))
        temporary.rename(self.result)

    async def progress(self) -> None:
        if "nth" not in self.data:
            say(f"  [{self.role}] {self.count:,} of {self.target:,} consumed ...")


def child_settings() -> HubSettings:
    return HubSettings()  # from the HUB_ environment the parent built


def run_faust(app: Any, spinner: bool) -> None:
    """Run `app` with faust.worker.Worker as streams.worker does, at loglevel warning, quiet.

    (`hub streams worker` passes its --loglevel, default info, below WARN: no spinner.)

    At a level of WARN or above, Faust's worker keeps its terminal spinner and, to
    spin it on every log record, sets the root logger to DEBUG: every debug call
    in Faust (one per value an agent yields, as the record-versions agent does per
    event) then builds a LogRecord. Unless `spinner`, the spinner is removed first
    so the root logger stays at WARNING.
    """
    from faust.worker import Worker as FaustWorker

    worker = FaustWorker(app, loglevel="warning", quiet=True)
    if not spinner:
        worker.spinner = None
    worker.execute_from_commandline()


def child_clock(args: argparse.Namespace, role: str) -> Clock:
    profile = Path(args.profile_out) if args.profile_out else None
    return Clock(role, args.events, Path(args.result), profile)


def run_agent(args: argparse.Namespace, app: Any, source: Any, agent: Any, clock: Clock) -> None:
    """Run the decode-only `agent` over `source` in `app`, reporting on `clock`."""
    app.agent(source, name="decode-only")(agent)
    app.timer(2.0)(clock.progress)
    run_faust(app, args.faust_spinner)


def run_stateless(args: argparse.Namespace) -> None:
    """(b): the decode-only agent reading as the worker reads: the worker's app, the
    case topics as bytes, the stream's buffer taken in one step (``streams.consumer``),
    an acknowledgement per event."""
    from streams.app import faust_app
    from streams.consumer import delivered, raw_topic

    settings = child_settings()
    app = faust_app(settings)
    decode = Codec("case_event").decode
    clock = child_clock(args, "stateless")
    tick = clock.tick

    async def decode_only(stream: Any) -> None:
        stream.enable_acks = False  # as the worker's agent; acknowledged as it reads
        async for event in stream.events():
            decode(event.value)
            event.ack()
            tick()
            for waiting in delivered(app, stream):
                decode(waiting.value)
                waiting.ack()
                tick()

    run_agent(args, app, raw_topic(app, *case_topics(settings)), decode_only, clock)


def run_stock(args: argparse.Namespace) -> None:
    """(b0): the decode-only agent as Faust's documentation writes one, on a ``faust.App``
    with Faust's own consumer and stream: ``async for value in stream``."""
    import faust

    from streams.app import broker_credentials, broker_url

    settings = child_settings()
    app = faust.App(
        settings.worker_app_id,
        broker=broker_url(settings.bootstrap_servers),
        broker_credentials=broker_credentials(client_config(settings)),
        store="memory://",
        datadir=str(settings.worker_data),
        autodiscover=False,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
    )
    source = app.topic(
        *case_topics(settings),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    decode = Codec("case_event").decode
    clock = child_clock(args, "stock")
    tick = clock.tick

    async def decode_only(stream: Any) -> None:
        async for value in stream:
            decode(value)
            tick()

    run_agent(args, app, source, decode_only, clock)


def run_pipeline(args: argparse.Namespace) -> None:
    from prometheus_client import CollectorRegistry

    from streams.app import Worker
    from streams.metrics import WorkerMetrics
    from streams.state import WorkerState
    from streams.store import open_disk
    from streams.timeliness import Timeliness

    settings = child_settings()
    clock = child_clock(args, "pipeline")

    class TimedWorker(Worker):
        """The worker unchanged, but for a clock tick per event and per acked batch."""

        def version_of(self, event: Any) -> Any:
            clock.tick()  # right after metrics.consumed.inc(), once per event
            return super().version_of(event)

        async def flush(self, partition: int) -> None:
            batch = self.pending.get(partition)
            await super().flush(partition)
            if batch is not None:
                clock.done(len(batch.events))

    # As streams.worker.run_worker builds it (no /metrics server: nothing scrapes here).
    registry = CollectorRegistry()
    state = WorkerState(disk=open_disk(settings))  # the production store (HUB_STORE)
    metrics = WorkerMetrics(registry, state)
    agreement = partnership(settings.agreement)
    timeliness = Timeliness(agreement)
    worker = TimedWorker(
        settings, agreement, metrics, state, on_submission=timeliness.observe_timestamp
    )

    def figures() -> dict[str, Any]:
        parts = list(state.partitions.values())
        return {
            "records": sum(sum(1 for _ in p.records.values()) for p in parts),
            "subjects": sum(len(p.agencies_of) for p in parts),
            "partitions": len(parts),
            "counters": {
                name: metrics.registry.get_sample_value(f"hub_{name}_total") or 0.0
                for name in (
                    "events_consumed",
                    "duplicates_dropped",
                    "stale_versions_dropped",
                    "corrections",
                    "withdrawals",
                    "undecodable_messages",
                    "version_batches_written",
                )
            },
        }

    clock.state = figures
    worker.app.timer(2.0)(clock.progress)
    run_faust(worker.app, args.faust_spinner)


#: In each subject's Quix state, beside its records' versions (64-hex record keys).
QUIX_BY_CODE = "by-code"


def keep_version(state: Any, version: RecordVersion, held: RecordVersion | None, kind: str) -> None:
    """Hold `version` (it supersedes `held`) as its record's current one in the subject's
    Quix `state`, and move the subject's live counts per risk code from `held` to it."""
    state.set(version.record_key, version.to_json())
    if kind == "replay":  # the same content under a higher version: counted already
        return
    change: Counter[str] = Counter()
    if held is not None and held.live:
        change.subtract(held.codes)
    if version.live:
        change.update(version.codes)
    if any(change.values()):
        counts: dict[str, int] = state.get(QUIX_BY_CODE, {})
        for code, step in change.items():
            counts[code] = counts.get(code, 0) + step
        state.set(QUIX_BY_CODE, {k: v for k, v in counts.items() if v})


def run_quix(args: argparse.Namespace) -> None:
    """(d): (c)'s job on Quix Streams, its state in RocksDB with a changelog topic.

    One stateful dataframe per agency topic (Quix keeps a state store and a
    changelog topic per topic; a record's events are all on its agency's
    topic). The state is per message key, the subject pseudonym: under each
    record key the record's current version (``RecordVersion.to_json``), and
    under QUIX_BY_CODE the subject's live records per risk code; a total is the
    sum over subjects, as the worker's is the sum over partitions. Quix's own
    client settings but the broker address (and the hub's security settings,
    PLAINTEXT here); log level WARNING, as the Faust children run.
    """
    import quixstreams
    from quixstreams import Application, State
    from quixstreams.kafka.configuration import ConnectionConfig

    from streams.records import RecordVersion
    from streams.records import classify as classify_version

    settings = child_settings()
    clock = child_clock(args, "quix")
    connection = ConnectionConfig.from_librdkafka_dict(
        {"bootstrap.servers": settings.bootstrap_servers, **client_config(settings).librdkafka()}
    )
    app = Application(
        broker_address=connection,
        consumer_group=settings.topic_namespace + settings.app_id,
        auto_offset_reset="earliest",
        state_dir=settings.worker_data / "quix-state",
        loglevel="WARNING",
    )
    decode = Codec("case_event").decode
    from_event = RecordVersion.from_event
    from_json = RecordVersion.from_json
    kinds: Counter[str] = Counter()
    tick = clock.tick
    target = args.events
    next_report = time.monotonic() + 2
    records = 0  # record keys in the state

    def keep(value: bytes, state: State[str, Any]) -> None:
        nonlocal next_report, records
        version = from_event(decode(value))
        stored = state.get(version.record_key)
        held = None if stored is None else from_json(stored)
        kind = classify_version(version, held)
        kinds[kind] += 1
        if kind not in ("duplicate", "stale"):
            keep_version(state, version, held, kind)
            records += held is None
        tick()
        if clock.count == target:
            app.stop()  # ends the poll loop, which then commits the checkpoint
        elif not clock.count % 1000 and time.monotonic() >= next_report:
            say(f"  [quix] {clock.count:,} of {target:,} processed ...")
            next_report = time.monotonic() + 2

    for name in case_topics(settings):
        topic = app.topic(name, key_deserializer="bytes", value_deserializer="bytes")
        app.dataframe(topic).update(keep, stateful=True)

    def figures() -> dict[str, Any]:
        return {"kinds": dict(kinds), "records": records}

    clock.state = figures
    clock.data["version"] = quixstreams.__version__
    app.run()


def run_state_memory(args: argparse.Namespace) -> None:
    """RSS growth while one PartitionState takes `--records` versions decoded from events."""
    from streams.records import RecordVersion
    from streams.state import PartitionState

    values = read_values(Path(args.values))
    rng = random.Random(9)
    subjects = [hex64(rng) for _ in range(args.subjects)]
    keys = [hex64(rng) for _ in range(args.records)]  # as the events carry them: 64-hex text
    decode = Codec("case_event").decode
    gc.collect()
    before = rss_kb()
    state = PartitionState()
    start = time.perf_counter()
    count = len(values)
    for index in range(args.records):
        if index and index % 200_000 == 0:
            say(f"  [state] {index:,} of {args.records:,} versions applied ...")
        record = decode(values[index % count])
        # A fresh string per event, as decoding gives: the key is held once per record.
        record["record_key"] = keys[index]
        keys[index] = ""
        if record["subject"] is not None:
            record["subject"]["value"] = subjects[index % len(subjects)].encode().decode()
        state.apply(RecordVersion.from_event(record))
    took = time.perf_counter() - start
    del keys
    gc.collect()
    after = rss_kb()
    result = {
        "rss_before": before,
        "rss_after": after,
        "records": sum(1 for _ in state.records.values()),
        "live": state.live,
        "subjects": len(state.agencies_of),
        "seconds": took,
    }
    Path(args.result).write_text(json.dumps(result))


def write_values(path: Path, values: Sequence[bytes]) -> None:
    with path.open("wb") as handle:
        for value in values:
            handle.write(struct.pack(">I", len(value)))
            handle.write(value)


def read_values(path: Path) -> list[bytes]:
    data = path.read_bytes()
    out, offset = [], 0
    while offset < len(data):
        (size,) = struct.unpack_from(">I", data, offset)
        out.append(data[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return out


# --- the parent's side of a child ---------------------------------------------------------
class Children:
    """Child processes this run started; each is stopped (its own session) on exit."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.stream_throughput", *argv],
            env=env | {"PYTHONUNBUFFERED": "1"},
            cwd=REPO_ROOT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
        if proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self.procs):
            self.stop(proc, timeout=10.0)


def wait_for(proc: subprocess.Popen[bytes], result: Path, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not result.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"{result.stem} exited with {proc.returncode} before its result")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{result.stem} gave no result within {timeout:.0f} s")
        time.sleep(0.05)
    data: dict[str, Any] = json.loads(result.read_text())
    return data


def wait_committed(settings: HubSettings, group: str, count: int, timeout: float) -> float | None:
    """time.time() when the group's committed offsets first cover `count` events (polled)."""
    from kafka import KafkaAdminClient

    topics = set(case_topics(settings))
    admin = KafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id="bench-lag",
        **client_config(settings).kafka_python(),
    )
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            offsets = admin.list_group_offsets(group).get(group, {})
            done = sum(o.offset for tp, o in offsets.items() if tp.topic in topics and o.offset > 0)
            if done >= count:
                return time.time()
            time.sleep(0.05)
    finally:
        admin.close()
    return None


@dataclass
class Bench:
    base: HubSettings
    work: Path
    args: argparse.Namespace
    children: Children

    def env(self, app_id: str) -> dict[str, str]:
        settings = self.base.model_copy(
            update={"app_id": app_id, "worker_data": self.work / app_id}
        )
        return settings.to_env()

    def child(self, role: str, app_id: str, *extra: str) -> tuple[dict[str, Any], Any]:
        result = self.work / f"{app_id}.json"
        if self.args.faust_spinner:
            extra = (*extra, "--faust-spinner")
        proc = self.children.start(
            ["--role", role, "--events", str(self.args.events), "--result", str(result), *extra],
            self.env(app_id),
        )
        try:
            data = wait_for(proc, result, timeout=max(300.0, self.args.events / 500))
            if role in ("pipeline", "quix"):
                say("  waiting for the committed offsets to cover every event ...")
                group = self.base.topic_namespace + app_id
                data["committed"] = wait_committed(self.base, group, self.args.events, 60.0)
        finally:
            self.children.stop(proc)
        return data, proc


def quix_unavailable() -> str | None:
    """Why (d) cannot run here, or None: quixstreams is imported in a fresh interpreter."""
    check = subprocess.run(
        [sys.executable, "-c", "import quixstreams; print(quixstreams.__version__)"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
    )
    if check.returncode == 0:
        return None
    lines = check.stderr.strip().splitlines()
    return lines[-1] if lines else f"python exited with {check.returncode}"


def timing(data: dict[str, Any], end: str, events: int) -> Timing:
    cpu_end = data.get(f"cpu_{end}", data["cpu_first"])
    return Timing(events, data["first"], data[end], cpu_end - data["cpu_first"], data)


# --- report ------------------------------------------------------------------------
@dataclass
class Round:
    raw: Timing
    stateless: Timing
    pipeline: dict[str, Any]  # the (c) child's result
    quix: dict[str, Any] | None = None  # the (d) child's result, unless skipped
    stock: Timing | None = None  # (b0)

    def consumed(self, n: int) -> Timing:
        return timing(self.pipeline, "nth", n)

    def acked(self, n: int) -> Timing:
        return timing(self.pipeline, "acked", n)

    def committed(self, n: int) -> Timing | None:
        return to_committed(self.pipeline, n)


def to_committed(data: dict[str, Any], n: int) -> Timing | None:
    """First event to the group's committed offsets covering all n (polled by the parent)."""
    end = data.get("committed")
    return None if end is None else Timing(n, data["first"], end)


def mb(kib: float) -> str:
    return f"{kib / 1024:,.0f} MB"


def row(name: str, samples: Sequence[Timing]) -> str:
    rates = [t.rate for t in samples]
    wall = statistics.median(t.wall for t in samples)
    cpu = statistics.median(t.cpu / t.wall for t in samples) if any(t.cpu for t in samples) else 0
    spread = f"{min(rates):,.0f}-{max(rates):,.0f}" if len(rates) > 1 else ""
    return f"{name:<48}{statistics.median(rates):>11,.0f}{spread:>16}{wall:>9.2f}" + (
        f"{cpu:>9.2f}" if cpu else f"{'-':>9}"
    )


def median_ratio(top: Sequence[Timing], bottom: Sequence[Timing]) -> float:
    return statistics.median(t.rate / b.rate for t, b in zip(top, bottom, strict=True))


def quix_rows(
    quix: list[dict[str, Any]],
    processed: list[Timing],
    committed: list[Timing],
    skipped: str | None,
) -> None:
    """The report's rows for (d), or why it was skipped."""
    if not quix:
        print(f"(d) Quix Streams: skipped ({skipped})")
        return
    label = f"(d) Quix Streams {quix[0].get('version', '')}"
    print(row(f"{label}, to N-th processed", processed))
    if committed:
        print(row(f"{label}, to offsets committed", committed))
    if len(committed) < len(quix):
        print(
            f"(d) offsets committed: not seen within 60 s in {len(quix) - len(committed)} round(s)"
        )


def per_round(rounds: list[Round], n: int) -> None:
    print("per round, events/s to the N-th event:")
    for number, r in enumerate(rounds, 1):
        c = r.consumed(n)
        d = None if r.quix is None else timing(r.quix, "nth", n)
        print(
            f"  round {number}: (a) {r.raw.rate:,.0f}, (b) {r.stateless.rate:,.0f},"
            f" (c) {c.rate:,.0f}"
            + ("" if d is None else f", (d) {d.rate:,.0f}")
            + f"; c/b {c.rate / r.stateless.rate:.2f}"
            + ("" if d is None else f", c/d {c.rate / d.rate:.2f}")
        )


def quix_counts(quix: dict[str, Any], expected: dict[str, int], records: int) -> None:
    """What (d) made of the events, checked as the worker's counters are."""
    kinds = Counter(quix["kinds"])
    print(
        "(d) classified: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(kinds.items()))
        + f"; holds {quix['records']:,} records"
    )
    seen = {  # as the worker's counters count them (a replay is a duplicate)
        "events_consumed": kinds.total(),
        "duplicates_dropped": kinds["duplicate"] + kinds["replay"],
        "stale_versions_dropped": kinds["stale"],
        "corrections": kinds["correction"],
        "withdrawals": kinds["withdrawal"],
    }
    wrong = [f"{k} {seen[k]:,} != {v:,}" for k, v in expected.items() if seen[k] != v]
    if quix["records"] != records:
        wrong.append(f"records {quix['records']:,} != (c)'s {records:,}")
    print("  counts as expected" if not wrong else "  COUNTS DIFFER: " + ", ".join(wrong))


def report(
    args: argparse.Namespace,
    produced: Produced,
    load_rate: float,
    rounds: list[Round],
    memory: dict[str, Any] | None,
    quix_skipped: str | None,
    load_start: tuple[float, float, float],
) -> None:
    n = args.events
    raw = [r.raw for r in rounds]
    stateless = [r.stateless for r in rounds]
    consumed = [r.consumed(n) for r in rounds]
    acked = [r.acked(n) for r in rounds]
    committed = [t for r in rounds if (t := r.committed(n)) is not None]
    quix = [r.quix for r in rounds if r.quix is not None]
    processed = [timing(q, "nth", n) for q in quix]
    quix_committed = [t for q in quix if (t := to_committed(q, n)) is not None]
    print(
        f"\nStream throughput, {n:,} events on {len(AGENCIES)} agency topics x"
        f" {args.partitions} partitions, {len(produced.subjects):,} subjects,"
        f" {len(rounds)} round(s), {os.cpu_count()} CPUs"
    )
    print(
        f"load average at the start: {' '.join(f'{x:.2f}' for x in load_start)};"
        f" now: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(
        f"produced: {load_rate:,.0f} events/s (confluent-kafka, acks=all); replays"
        f" {produced.replays:,}; expected kinds "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(produced.kinds.items()))
    )
    print(
        f"Faust root logger while consuming: (b) {stateless[0].extra.get('root_level')},"
        f" (c) {rounds[0].pipeline.get('root_level')}"
    )
    print(f"{'':<48}{'events/s':>11}{'range':>16}{'seconds':>9}{'CPU/wall':>9}")
    print(row("(a) raw aiokafka consumer + Codec.decode", raw))
    stock = [r.stock for r in rounds if r.stock is not None]
    print(row("(b0) Faust agent, Faust's consumer and stream", stock))
    print(row("(b) Faust agent, decode only", stateless))
    print(row("(c) streams.app.Worker, to N-th consumed", consumed))
    print(row("(c) streams.app.Worker, to all written + acked", acked))
    if committed:
        print(row("(c) streams.app.Worker, to offsets committed", committed))
    if len(committed) < len(rounds):
        print(
            f"(c) offsets committed: not seen within 60 s in"
            f" {len(rounds) - len(committed)} round(s)"
        )
    quix_rows(quix, processed, quix_committed, quix_skipped)
    gc_rows = [("(b)", stateless), ("(c)", acked)] + ([("(d)", processed)] if quix else [])
    for name, samples in gc_rows:
        pauses = statistics.median(t.extra["gc_seconds"] / t.wall for t in samples)
        full = statistics.median(t.extra["gc_full"] for t in samples)
        print(f"  {name} garbage collection: {pauses:.1%} of the time, {full:.0f} full collections")

    print(
        f"\nc/a = {median_ratio(consumed, raw):.2f} (acked: {median_ratio(acked, raw):.2f});"
        f" c/b = {median_ratio(consumed, stateless):.2f}"
        f" (acked: {median_ratio(acked, stateless):.2f})"
        + (
            "; c/b per round: "
            + ", ".join(f"{c.rate / b.rate:.2f}" for c, b in zip(consumed, stateless, strict=True))
            if len(rounds) > 1
            else ""
        )
    )
    print(
        f"c/b0 = {median_ratio(consumed, stock):.2f} (acked: {median_ratio(acked, stock):.2f});"
        f" b/b0 = {median_ratio(stateless, stock):.2f}"
    )
    if quix:
        both = len(committed) == len(rounds) and len(quix_committed) == len(quix)
        print(
            f"c/d = {median_ratio(consumed, processed):.2f}"
            + (f" (committed: {median_ratio(committed, quix_committed):.2f})" if both else "")
            + f"; d/b = {median_ratio(processed, stateless):.2f}"
        )
    if len(rounds) > 1:
        per_round(rounds, n)
    pipeline = rounds[0].pipeline
    counters = pipeline["counters"]
    print(
        "worker counted: "
        + ", ".join(f"{k} {v:,.0f}" for k, v in counters.items())
        + f"; holds {pipeline['records']:,} records, {pipeline['subjects']:,} subjects with"
        f" live records, {pipeline['partitions']} partitions"
    )
    expected = {
        "events_consumed": n,
        "duplicates_dropped": produced.kinds["duplicate"] + produced.kinds["replay"],
        "stale_versions_dropped": produced.kinds["stale"],
        "corrections": produced.kinds["correction"],
        "withdrawals": produced.kinds["withdrawal"],
    }
    wrong = [f"{k} {counters[k]:,.0f} != {v:,}" for k, v in expected.items() if counters[k] != v]
    print("  counts as expected" if not wrong else "  COUNTS DIFFER: " + ", ".join(wrong))
    if quix:
        quix_counts(quix[0], expected, pipeline["records"])
    subjects = max(pipeline["subjects"], 1)
    records = max(pipeline["records"], 1)
    grown = pipeline["rss_end"] - pipeline["rss_start"]
    print(
        f"\nmemory of (c): VmRSS {mb(pipeline['rss_start'])} before consuming,"
        f" {mb(pipeline['rss_first'])} at the first event (fetch buffers full),"
        f" {mb(pipeline['rss_end'])} holding {records:,} records of {subjects:,} subjects"
    )
    print(
        f"  growth from before consuming {mb(grown)}: {grown * 1024 / subjects:,.0f}"
        f" bytes/subject ({grown * 1024 / records:,.0f} bytes/record)"
        f" -> {mb(grown * 1_000_000 / subjects)} per million subjects"
    )
    grown = pipeline["rss_end"] - pipeline["rss_first"]
    print(
        f"  growth from the first event {mb(grown)}: {grown * 1024 / subjects:,.0f}"
        f" bytes/subject -> {mb(grown * 1_000_000 / subjects)} per million subjects"
    )
    if quix:
        print(
            f"memory of (d): VmRSS {mb(quix[0]['rss_start'])} before consuming,"
            f" {mb(quix[0]['rss_first'])} at the first event,"
            f" {mb(quix[0]['rss_end'])} at the N-th (RocksDB's memory included)"
        )
    if memory is not None:
        grown = memory["rss_after"] - memory["rss_before"]
        print(
            f"PartitionState alone (fresh process): {memory['records']:,} record versions of"
            f" {memory['subjects']:,} subjects: RSS +{mb(grown)}"
            f" = {grown * 1024 / memory['records']:,.0f} bytes/record,"
            f" {grown * 1024 / memory['subjects']:,.0f} bytes/subject"
            f" -> {mb(grown * 1_000_000 / memory['subjects'])} per million subjects"
            f" ({memory['records'] / memory['seconds']:,.0f} versions/s decoded and applied)"
        )
    print_targets(consumed, acked, stateless, processed, stock)


def print_targets(
    consumed: list[Timing],
    acked: list[Timing],
    stateless: list[Timing],
    processed: list[Timing],
    stock: list[Timing],
) -> None:
    print("\ntargets (from the issue), on the medians:")
    b_rate = statistics.median(t.rate for t in stateless)
    for label, samples in (("to N-th consumed", consumed), ("to all acked", acked)):
        rate = statistics.median(t.rate for t in samples)
        ratio = median_ratio(samples, stateless)
        print(
            f"  (c) {label}: {rate:,.0f} events/s = {ratio:.0%} of (b) ({b_rate:,.0f}),"
            f" target >= {RATIO_TARGET:.0%}: {'MET' if ratio >= RATIO_TARGET else 'NOT MET'};"
            f" target >= {RATE_TARGET:,.0f}/s: {'MET' if rate >= RATE_TARGET else 'NOT MET'};"
            f" stretch >= {RATE_STRETCH:,.0f}/s: {'MET' if rate >= RATE_STRETCH else 'NOT MET'}"
        )
    if processed:
        c_rate = statistics.median(t.rate for t in consumed)
        d_rate = statistics.median(t.rate for t in processed)
        pairs = zip(consumed, processed, strict=False)
        rounds = ", ".join(f"{c.rate / d.rate:.2f}" for c, d in pairs)
        print(
            f"  (c) to N-th consumed {c_rate:,.0f} events/s, (d) to N-th processed"
            f" {d_rate:,.0f}: target (c) >= (d): {'MET' if c_rate >= d_rate else 'NOT MET'}"
            f" (c/d per round: {rounds})"
        )
    if stock:
        ratio = median_ratio(consumed, stock)
        print(
            f"  (c) to N-th consumed = {ratio:.0%} of (b0), the same agent on Faust's own"
            f" consumer and stream, target >= {RATIO_TARGET:.0%}:"
            f" {'MET' if ratio >= RATIO_TARGET else 'NOT MET'}"
        )


def print_profile(path: Path, top: int) -> None:
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    print(out.getvalue())


# --- the run -----------------------------------------------------------------------
@contextmanager
def kafka(args: argparse.Namespace, work: Path) -> Iterator[HubSettings]:
    """Settings for the broker at --bootstrap, or for one this run starts and stops."""
    with broker_for(HubSettings(case_partitions=args.partitions), args.bootstrap, work) as base:
        yield base


@contextmanager
def broker_for(base: HubSettings, bootstrap: str | None, work: Path) -> Iterator[HubSettings]:
    """``base`` for the broker at ``bootstrap`` (it must answer), or for one this run
    starts (state under ``work``, free ports) and stops at the end, also on error."""
    base = base.model_copy(
        update={
            "broker_data": work / "broker",
            "broker_port": free_port(),
            "controller_port": free_port(),
        }
    )
    if bootstrap:
        if not broker_answers(bootstrap, 10.0):
            raise SystemExit(f"no Kafka broker answers at {bootstrap}")
        yield base.model_copy(update={"bootstrap": bootstrap})
        return
    broker = Broker(base)
    say(f"starting a Kafka broker on {base.bootstrap_servers} (state in {work}) ...")
    try:
        broker.start(quiet=True)
        yield base
    finally:
        say("stopping the broker ...")
        broker.stop()


def measure(args: argparse.Namespace, work: Path, children: Children) -> None:
    load_start = os.getloadavg()
    quix_skipped = "--no-quix" if args.no_quix else quix_unavailable()
    if quix_skipped is not None and not args.no_quix:
        quix_skipped = (
            f"quixstreams cannot be imported: {quix_skipped};"
            " to install it see docs/benchmarks.md, Stream processing"
        )
        say(f"(d) Quix Streams will be SKIPPED: {quix_skipped}")
    with kafka(args, work) as base:
        base = base.model_copy(update={"topic_namespace": f"bench{uuid.uuid4().hex[:8]}.stream."})
        agreement = partnership(base.agreement)
        check_partners(agreement)
        apply_topics(base, declared_topics(base, agreement))
        bench = Bench(base, work, args, children)
        say(f"building {args.events:,} case events over {args.subjects:,} subjects ...")
        produced = make_events(base, args.events, args.subjects)
        say(f"producing them to {len(AGENCIES)} topics x {args.partitions} partitions ...")
        took = produce(base, produced.messages)
        have = end_offsets(base)
        if have != args.events:
            raise RuntimeError(f"the agency topics hold {have} events, expected {args.events}")
        sample = [value for _, _, value in produced.messages[: min(args.events, 50_000)]]
        produced.messages.clear()
        values = work / "values.bin"
        write_values(values, sample)
        del sample
        gc.collect()

        rounds: list[Round] = []
        for number in range(1, args.repeat + 1):
            tag = f"round {number}/{args.repeat}: " if args.repeat > 1 else ""
            say(f"{tag}(a) raw aiokafka consumer, decode only ...")
            raw = asyncio.run(raw_consume(base, args.events))
            say(f"  {raw.rate:,.0f} events/s")
            say(f"{tag}(b) Faust agent, decode only (child process) ...")
            data, _ = bench.child("stateless", f"bench-stateless-{number}")
            stateless = timing(data, "nth", args.events)
            say(f"  {stateless.rate:,.0f} events/s")
            say(f"{tag}(b0) Faust agent on Faust's own consumer and stream (child process) ...")
            data, _ = bench.child("stock", f"bench-stock-{number}")
            stock = timing(data, "nth", args.events)
            say(f"  {stock.rate:,.0f} events/s")
            say(f"{tag}(c) streams.app.Worker (child process) ...")
            pipeline, _ = bench.child("pipeline", f"bench-pipeline-{number}")
            say(f"  {timing(pipeline, 'nth', args.events).rate:,.0f} events/s to N-th consumed")
            quix = None
            if quix_skipped is None:
                say(f"{tag}(d) Quix Streams (child process) ...")
                quix, _ = bench.child("quix", f"bench-quix-{number}")
                say(f"  {timing(quix, 'nth', args.events).rate:,.0f} events/s to N-th processed")
            rounds.append(Round(raw, stateless, pipeline, quix, stock))
        memory = None
        if args.state_records:
            say(f"PartitionState with {args.state_records:,} record versions (child process) ...")
            ratio = max(rounds[0].pipeline["records"], 1) / max(len(produced.subjects), 1)
            result = work / "state.json"
            proc = children.start(
                [
                    "--role",
                    "state-memory",
                    "--values",
                    str(values),
                    "--records",
                    str(args.state_records),
                    "--subjects",
                    str(max(int(args.state_records / ratio), 1)),
                    "--result",
                    str(result),
                ],
                dict(os.environ),
            )
            try:
                memory = wait_for(proc, result, timeout=900)
            finally:
                children.stop(proc)
        profiles: dict[str, Path] = {}
        if args.profile:
            roles = {"stateless": "b", "pipeline": "c"} | (
                {"quix": "d"} if not quix_skipped else {}
            )
            for role, phase in roles.items():
                say(f"({phase}) once more under cProfile ...")
                profiles[role] = work / f"{role}.prof"
                bench.child(role, f"bench-{role}-profile", "--profile-out", str(profiles[role]))
        report(args, produced, args.events / took, rounds, memory, quix_skipped, load_start)
        for role, path in profiles.items():
            print(f"\ncProfile of the {role} child, first to last event (top {args.top}):")
            print_profile(path, args.top)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.stream_throughput", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--events", type=int, default=200_000, help="events to produce and read")
    parser.add_argument("--subjects", type=int, default=50_000, help="distinct children")
    parser.add_argument("--partitions", type=int, default=6, help="partitions per agency topic")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of (a) to (d); medians")
    parser.add_argument(
        "--state-records",
        type=int,
        default=STATE_RECORDS,
        help="record versions for the PartitionState memory figure (0: skip it)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="cProfile one more run of (b), (c) and (d)"
    )
    parser.add_argument(
        "--no-quix", action="store_true", help="skip (d), the Quix Streams application"
    )
    parser.add_argument("--top", type=int, default=25, help="rows of the cProfile listing")
    parser.add_argument("--bootstrap", help="use this running broker instead of starting one")
    parser.add_argument(
        "--faust-spinner",
        action="store_true",
        help="leave Faust's spinner on (root logger at DEBUG), to measure what it costs",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    # Internal: the child processes.
    parser.add_argument(
        "--role",
        choices=("main", "stateless", "stock", "pipeline", "quix", "state-memory"),
        default="main",
    )
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)
    parser.add_argument("--values", help=argparse.SUPPRESS)
    parser.add_argument("--records", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.events, args.subjects, args.partitions, args.repeat) < 1 or args.state_records < 0:
        parser.error("--events, --subjects, --partitions and --repeat must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role == "stateless":
        run_stateless(args)
        return 0
    if args.role == "stock":
        run_stock(args)
        return 0
    if args.role == "pipeline":
        run_pipeline(args)
        return 0
    if args.role == "quix":
        run_quix(args)
        return 0
    if args.role == "state-memory":
        run_state_memory(args)
        return 0
    # SIGTERM unwinds like Ctrl-C, so the children and the broker this run started stop.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="hub-stream-bench-"))
    children = Children()
    try:
        measure(args, work, children)
    finally:
        children.stop_all()
        if args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
