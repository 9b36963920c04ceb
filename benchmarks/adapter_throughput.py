"""Adapter throughput: rows/s from a CSV file to acknowledged in Kafka, beside raw producers.

Run from the repository root::

    .venv/bin/python -m benchmarks.adapter_throughput [--rows 50000] [--repeat 3] [--profile]

It starts its own Kafka broker (temporary state directory, free ports; stopped
at the end, also on error), applies the hub's topics under fresh namespaces,
writes a synthetic generic-layout CSV in which every row is accepted and
distinct, and then measures, in the same run and interleaved round by round:

(a) a raw kafka-python producer (acks=all, idempotence, the publisher's
    linger/batch settings) sending the very bytes the adapter produced;
(b) the full adapter with the kafka-python publisher: CSV -> map -> encode ->
    outbox -> Kafka acknowledged (ingest_file + drain, fresh outbox);
(c) the same with the confluent-kafka publisher;
(d) a raw confluent-kafka producer with the publisher's settings.

Targets (from the issues): (b) >= 80 % of (a) (issue 16; 70 % before); (c) >= 20,000 rows/s.
See docs/benchmarks.md for the figures measured on the project machine.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import itertools
import os
import pstats
import shutil
import signal
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.outbox import OutboxItem
from adapters.runner import AdapterRun, adapter_run
from adapters.synth.cases import child_pool, synth_rows, write_csv
from hub.agreement.model import load_agreement
from hub.kafka.security import client_config
from hub.ops.broker import Broker
from hub.ops.topics import apply_topics, declared_topics
from hub.pseudonymise import KeyRing, write_key_file
from hub.settings import HubSettings

AGENCY = "camhs"
PROFILE = "generic"
RAW_KP = "raw kafka-python"
ADAPTER_KP = "adapter kafka-python"
ADAPTER_CF = "adapter confluent"
RAW_CF = "raw confluent-kafka"
PHASES = (RAW_KP, ADAPTER_KP, ADAPTER_CF, RAW_CF)
RATIO_TARGET = 0.80
CONFLUENT_TARGET = 20_000.0


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- input ---------------------------------------------------------------------
def accepted_rows(count: int, seed: int) -> list[dict[str, str]]:
    """`count` synthetic rows, all valid and distinct: no bad rows, no byte-for-byte replays."""
    pool = child_pool(max(count // 4, 100), seed=seed)
    rows: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    ask = count + count // 5 + 100
    while len(rows) < count:
        rows = []
        seen.clear()
        for row in synth_rows(AGENCY, ask, seed, pool):
            ident = (row["record_id"], row["record_version"])
            if ident in seen or "NOT-VALID" in row.values():
                continue
            seen.add(ident)
            rows.append(row)
        ask *= 2
    return rows[:count]


def write_input(folder: Path, name: str, count: int, seed: int) -> Path:
    path = folder / name
    write_csv(path, accepted_rows(count, seed))
    return path


def read_events(outbox: Path) -> list[OutboxItem]:
    db = sqlite3.connect(outbox)
    try:
        rows = db.execute("SELECT event_id, topic, key, value FROM outbox ORDER BY seq").fetchall()
    finally:
        db.close()
    return [OutboxItem(*row) for row in rows]


# --- timing helpers ------------------------------------------------------------
@dataclass
class Sample:
    rows: int
    wall: float
    cpu: float
    parts: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.rows / self.wall


class Stopwatch:
    """Accumulates the wall time spent inside wrapped callables."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    def wrap(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.totals[name] = self.totals.get(name, 0.0) + time.perf_counter() - start

        return timed


@contextmanager
def measured(rows: int) -> Iterator[Sample]:
    sample = Sample(rows, 0.0, 0.0)
    wall, cpu = time.perf_counter(), time.process_time()
    yield sample
    sample.wall = time.perf_counter() - wall
    sample.cpu = time.process_time() - cpu


# --- the four measurements -------------------------------------------------------
def raw_kafka_python(settings: HubSettings, topic: str, events: Sequence[OutboxItem]) -> Sample:
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id="bench-raw-kafka-python",
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        batch_size=256 * 1024,
        max_block_ms=10_000,
        **client_config(settings).kafka_python(),
    )
    try:
        # Connect and fetch the topic's metadata before the clock starts.
        producer.send(topic, key=events[0].key, value=events[0].value).get(timeout=30)
        with measured(len(events)) as sample:
            futures = [producer.send(topic, key=e.key, value=e.value) for e in events]
            producer.flush(timeout=120)
            for future in futures:
                future.get(timeout=0)
    finally:
        producer.close(timeout=10)
    return sample


def raw_confluent(settings: HubSettings, topic: str, events: Sequence[OutboxItem]) -> Sample:
    from confluent_kafka import KafkaError, Message, Producer

    producer = Producer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "client.id": "bench-raw-confluent",
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.timeout.ms": 30_000,
            "queue.buffering.max.messages": 500_000,
            **client_config(settings).librdkafka(),
        }
    )
    delivered: list[int] = []
    failed: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, _message: Message[bytes, bytes]) -> None:
        if error is None:
            delivered.append(1)
        else:
            failed.append(error)

    producer.produce(topic, key=events[0].key, value=events[0].value, on_delivery=on_delivery)
    producer.flush(30)
    delivered.clear()
    with measured(len(events)) as sample:
        for event in events:
            while True:
                try:
                    producer.produce(
                        topic, key=event.key, value=event.value, on_delivery=on_delivery
                    )
                    break
                except BufferError:
                    producer.poll(0.05)
        remaining = producer.flush(120)
    if remaining or failed or len(delivered) != len(events):
        raise RuntimeError(
            f"raw confluent-kafka: {len(delivered)} delivered, {len(failed)} failed,"
            f" {remaining} still queued"
        )
    return sample


def through_adapter(settings: HubSettings, csv_path: Path, rows: int) -> Sample:
    """CSV -> outbox -> Kafka acknowledged with the publisher `settings` names; fresh outbox."""
    watch = Stopwatch()
    with adapter_run(settings, PROFILE, AGENCY, quarantine=settings.outbox.parent / "q") as run:
        with instrument(run, watch), measured(rows) as sample:
            started = time.perf_counter()
            # As `hub adapter run FILE` does: a drain process sends while this one reads.
            with run.forwarding_in_background(poll=0.2, separate_process=True):
                summary = run.ingest_file(csv_path)
            ingested = time.perf_counter()
            run.drain(timeout=120)
            assert run.outbox is not None
            pending, sent = run.outbox.counts()
            sample.parts["ingest"] = ingested - started
            sample.parts["drain"] = time.perf_counter() - ingested
    gc.collect()  # let a confluent producer go now, not at exit
    if summary.accepted != rows or summary.stored != rows or sent != rows or pending:
        raise RuntimeError(
            f"adapter ({settings.publisher}): {summary.line()}; {sent} sent, expected {rows}"
        )
    sample.parts.update(watch.totals)
    return sample


@contextmanager
def instrument(run: AdapterRun, watch: Stopwatch) -> Iterator[None]:
    """Time the outbox and publisher calls of one run (instance attributes, no code change)."""
    assert run.outbox is not None and run.forwarder is not None
    targets: list[tuple[Any, str, str]] = [
        (run.outbox, "put", "outbox.put"),
        (run.outbox, "pending", "outbox.pending"),
        (run.outbox, "mark_sent", "outbox.mark_sent"),
        (run.forwarder.publisher, "send", "publisher.send"),
    ]
    for obj, attr, name in targets:
        setattr(obj, attr, watch.wrap(name, getattr(obj, attr)))
    try:
        yield
    finally:
        # Break the wrapper -> bound method -> object cycles, so a producer goes at once.
        for obj, attr, _ in targets:
            vars(obj).pop(attr, None)


def ingest_only(settings: HubSettings, csv_path: Path, rows: int, dry_run: bool) -> Sample:
    """Read, map, encode (and store, unless a dry run): no Kafka."""
    with adapter_run(
        settings, PROFILE, AGENCY, dry_run=dry_run, quarantine=settings.outbox.parent / "q"
    ) as run:
        with measured(rows) as sample:
            summary = run.ingest_file(csv_path)
    if summary.accepted != rows:
        raise RuntimeError(f"ingest: {summary.line()}; expected {rows} accepted")
    return sample


def stage_rates(settings: HubSettings, csv_path: Path, rows: int) -> dict[str, float]:
    """Rows/s of each ingest stage alone, on the first `rows` rows: read, map, to_avro, encode."""
    from adapters.sources.base import SourceRecord
    from adapters.sources.delimited import CsvSource

    rates: dict[str, float] = {}
    with adapter_run(settings, PROFILE, AGENCY, dry_run=True) as run:
        mapper = run.adapter.mapper(csv_path.name)
        start = time.perf_counter()
        source = itertools.islice(CsvSource(csv_path, run.profile).records(), rows)
        records = [r for r in source if isinstance(r, SourceRecord)]
        rates["read CSV"] = len(records) / (time.perf_counter() - start)
        start = time.perf_counter()
        events = [mapper.map(r.row, r.values) for r in records]
        rates["map (validate, minimise, HMAC)"] = len(events) / (time.perf_counter() - start)
        start = time.perf_counter()
        avro = [e.to_avro() for e in events]
        rates["CaseEvent.to_avro"] = len(avro) / (time.perf_counter() - start)
        start = time.perf_counter()
        for record in avro:
            run.adapter.codec.encode(record)
        rates["Codec.encode"] = len(avro) / (time.perf_counter() - start)
    return rates


# --- the run -------------------------------------------------------------------
@dataclass
class Bench:
    base: HubSettings
    work: Path
    namespaces: dict[str, str]
    counter: int = 0
    stages: dict[str, float] = field(default_factory=dict)

    def settings(self, phase: str, publisher: str = "kafka-python") -> HubSettings:
        self.counter += 1
        return self.base.model_copy(
            update={
                "topic_namespace": self.namespaces[phase],
                "publisher": publisher,
                "outbox": self.work / f"outbox-{self.counter}.sqlite",
            }
        )

    def topic(self, phase: str) -> str:
        return self.settings(phase).case_topic(AGENCY)

    def run_phase(
        self,
        phase: str,
        csv_path: Path,
        events: Sequence[OutboxItem],
        rows: int,
        space: str | None = None,
    ) -> Sample:
        """One measurement; `space` names the topic namespace (default: the phase's own)."""
        space = space or phase
        if phase == RAW_KP:
            return raw_kafka_python(self.base, self.topic(space), events[:rows])
        if phase == RAW_CF:
            return raw_confluent(self.base, self.topic(space), events[:rows])
        publisher = "confluent" if phase == ADAPTER_CF else "kafka-python"
        return through_adapter(self.settings(space, publisher), csv_path, rows)


def end_offsets(settings: HubSettings, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, **client_config(settings).kafka_python()
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return int(sum(consumer.end_offsets(partitions).values()))
    finally:
        consumer.close()


def prepare(
    bench: Bench, args: argparse.Namespace
) -> tuple[Path, Path, list[OutboxItem], dict[str, Sample]]:
    say(f"writing {args.rows:,} + {args.warmup:,} (warm-up) synthetic rows ...")
    csv_path = write_input(bench.work, "bench.csv", args.rows, seed=11)
    warm_path = write_input(bench.work, "warmup.csv", args.warmup, seed=12)
    say(f"  {csv_path.stat().st_size / 1e6:.1f} MB")
    say("ingest without Kafka (dry run, then into an outbox) ...")
    extra = {
        "ingest dry run (read+map+encode)": ingest_only(
            bench.settings("warmup"), csv_path, args.rows, dry_run=True
        )
    }
    store = bench.settings("warmup")
    extra["ingest into outbox"] = ingest_only(store, csv_path, args.rows, dry_run=False)
    events = read_events(store.outbox)
    warm_events = events[: args.warmup]
    say("ingest stages alone ...")
    bench.stages = stage_rates(bench.settings("warmup"), csv_path, min(args.rows, 10_000))
    say(f"warm-up: every phase once on {args.warmup:,} rows ...")
    for phase in PHASES:
        bench.run_phase(phase, warm_path, warm_events, args.warmup, space="warmup")
    return csv_path, warm_path, events, extra


def measure(
    bench: Bench, args: argparse.Namespace, csv_path: Path, events: list[OutboxItem]
) -> dict[str, list[Sample]]:
    results: dict[str, list[Sample]] = {phase: [] for phase in PHASES}
    for round_no in range(1, args.repeat + 1):
        for phase in PHASES:
            say(f"round {round_no}/{args.repeat}: {phase}, {args.rows:,} rows ...")
            sample = bench.run_phase(phase, csv_path, events, args.rows)
            say(f"  {sample.rate:,.0f} rows/s ({sample.wall:.2f} s, {sample.cpu:.2f} s CPU)")
            results[phase].append(sample)
    say("checking what Kafka holds ...")
    for phase in PHASES:
        want = args.repeat * args.rows + (1 if phase in (RAW_KP, RAW_CF) else 0) * args.repeat
        have = end_offsets(bench.base, bench.topic(phase))
        if have != want:
            raise RuntimeError(f"{phase}: topic holds {have} records, expected {want}")
    return results


def profile_adapter(bench: Bench, csv_path: Path, rows: int, top: int) -> None:
    say("profiling one adapter run (kafka-python publisher) ...")
    profiler = cProfile.Profile()
    profiler.enable()
    through_adapter(bench.settings(ADAPTER_KP), csv_path, rows)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=sys.stdout)
    print(f"\ncProfile of the adapter with kafka-python, {rows:,} rows (top {top}):")
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


# --- report --------------------------------------------------------------------
def median_rate(samples: list[Sample]) -> float:
    return statistics.median(s.rate for s in samples)


def report(
    args: argparse.Namespace,
    results: dict[str, list[Sample]],
    extra: dict[str, Sample],
    stages: dict[str, float],
) -> bool:
    print(
        f"\nAdapter throughput, {args.rows:,} rows, {args.repeat} round(s), {os.cpu_count()} CPUs"
    )
    print(f"load average now: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'phase':<34}{'median rows/s':>15}{'min':>10}{'max':>10}{'CPU/wall':>10}")
    for name, samples in results.items():
        rates = [s.rate for s in samples]
        cpu = statistics.median(s.cpu / s.wall for s in samples)
        print(
            f"{name:<34}{median_rate(samples):>15,.0f}{min(rates):>10,.0f}{max(rates):>10,.0f}{cpu:>10.2f}"
        )
    for name, sample in extra.items():
        print(f"{name:<34}{sample.rate:>15,.0f}{'':>20}{sample.cpu / sample.wall:>10.2f}")
    print(
        "per round, rows/s: "
        + "; ".join(
            f"{name}: " + ", ".join(f"{s.rate:,.0f}" for s in samples)
            for name, samples in results.items()
        )
    )
    ratio = median_rate(results[ADAPTER_KP]) / median_rate(results[RAW_KP])
    ratios = [b.rate / a.rate for a, b in zip(results[RAW_KP], results[ADAPTER_KP], strict=True)]
    confluent = median_rate(results[ADAPTER_CF])
    ok_ratio, ok_confluent = ratio >= RATIO_TARGET, confluent >= CONFLUENT_TARGET
    print(
        f"\nratio adapter/raw (kafka-python): {ratio:.2f} (per round:"
        f" {', '.join(f'{r:.2f}' for r in ratios)}); target >= {RATIO_TARGET:.2f}:"
        f" {'MET' if ok_ratio else 'NOT MET'}"
    )
    print(
        f"adapter with confluent-kafka: {confluent:,.0f} rows/s; target >="
        f" {CONFLUENT_TARGET:,.0f}: {'MET' if ok_confluent else 'NOT MET'}"
    )
    print_breakdown(results)
    print("\ningest stages alone (rows/s, one pass; each row costs 1/rate):")
    for name, rate in stages.items():
        print(f"  {name:<32}{rate:>10,.0f}/s  {1e6 / rate:>7.1f} us/row")
    return ok_ratio and ok_confluent


def print_breakdown(results: dict[str, list[Sample]]) -> None:
    print("\nwhere the adapter's time goes (median seconds per run):")
    for name in (ADAPTER_KP, ADAPTER_CF):
        samples = results[name]
        wall = statistics.median(s.wall for s in samples)
        keys = [
            "ingest",
            "outbox.put",
            "drain",
            "outbox.pending",
            "publisher.send",
            "outbox.mark_sent",
        ]
        parts = ", ".join(
            f"{k} {statistics.median(s.parts.get(k, 0.0) for s in samples):.2f}"
            f" ({statistics.median(s.parts.get(k, 0.0) for s in samples) / wall:.0%})"
            for k in keys
        )
        print(f"  {name}: total {wall:.2f}; {parts}")
    print("  (outbox.put is inside ingest; pending, send and mark_sent are inside drain)")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.adapter_throughput", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=50_000, help="rows per measurement")
    parser.add_argument("--warmup", type=int, default=2_000, help="rows in the warm-up run")
    parser.add_argument("--repeat", type=int, default=3, help="measurement rounds (median kept)")
    parser.add_argument("--profile", action="store_true", help="cProfile one adapter run")
    parser.add_argument("--top", type=int, default=10, help="rows of the cProfile listing")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.warmup < 1 or args.repeat < 1:
        parser.error("--rows, --warmup and --repeat must be positive")
    args.warmup = min(args.warmup, args.rows)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the broker this run started is stopped.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    key_file = work / "bench.key"
    write_key_file(key_file, KeyRing.generate("bench"))
    base = HubSettings(
        broker_data=work / "broker",
        broker_port=free_port(),
        controller_port=free_port(),
        key_file=key_file,
        outbox=work / "outbox.sqlite",
    )
    run_id = uuid.uuid4().hex[:8]
    names = ("warmup", *PHASES)
    namespaces = {n: f"bench{run_id}.{n.replace(' ', '-')}." for n in names}
    # The agreement's topics for the one partner this benchmark publishes as.
    agreement = load_agreement(base.agreement)
    agreement = agreement.model_copy(update={"partners": (agreement.partner(AGENCY),)})
    broker = Broker(base)
    say(f"starting a Kafka broker on {base.bootstrap_servers} (state in {work}) ...")
    try:
        broker.start(quiet=True)
        bench = Bench(base, work, namespaces)
        for namespace in namespaces.values():
            scoped = base.model_copy(update={"topic_namespace": namespace})
            apply_topics(scoped, declared_topics(scoped, agreement))
        csv_path, _, events, extra = prepare(bench, args)
        results = measure(bench, args, csv_path, events)
        met = report(args, results, extra, bench.stages)
        if args.profile:
            profile_adapter(bench, csv_path, args.rows, args.top)
    finally:
        say("stopping the broker ...")
        broker.stop()
        if args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
