"""An operator's forced release against the length of the history: ``hub publish --now``
on a real Kafka broker, wall time and peak memory.

Run from the repository root::

    .venv/bin/python -m benchmarks.publish_now [--sizes 10000,100000,1000000]

It starts its own Kafka broker (temporary state directory, free ports; stopped
at the end, also on error) unless ``--bootstrap`` names one that answers. For
each size N, under a fresh topic namespace (so each size has its own changelog
and trends topic), it applies the hub's topics, creates the workers' changelog
as Faust does (``HUB_CASE_PARTITIONS`` partitions, compacted) and writes to it
N record versions from ``benchmarks.publish_history.History`` (36 months, about
``--period-events`` of them in the month published, 2026-10) as the workers
write them: JSON batches of 500 keyed ``"<partition>:<writer>:<sequence>"``,
spread over the partitions. The case topics stay empty, so the publisher has no
worker to wait for. Then it runs the real command::

    hub publish --now --period 2026-10

as a child process with the HUB_* environment of that namespace and the example
agreement, twice: the first run releases the month (revision 0), the second
finds it unchanged and sends nothing. Each run must exit 0 and print
``released ...`` (first) or ``... unchanged ...`` (second), else the benchmark
stops with an error. Per run it reports the wall time from start to exit, the
CPU time, and the peak resident memory (``ru_maxrss`` of that one child, from
``os.wait4``); beside them the start-up cost of a process that only imports the
command and the publisher.

Then, with the publisher service running (``hub streams publisher``, started on
that history and timed until it takes requests: its request group has a
member), one more batch of 500 new versions dated 2026-10 is written to the
changelog and the same command is run twice more. It asks the service, which
already holds the history, so the first run releases revision 1 and the
second finds it unchanged; each must say it asked the service.

For the largest size it then splits, in one more child process (unless
``--no-phases``), what a release costs: ``Publisher.publish_now`` in-process (no
interpreter start; the period is unchanged by then), then the changelog read to
its end without decoding (kafka-python, the publisher's fetch sizes),
``decode_batch`` of every batch, ``RecordIndex.merge`` of every
version, and the month's cells from the index (``breakdowns`` +
``protect_cells``).

Nothing is asserted beyond the command's success; the figures are reported.
The topics of each size are deleted after it (with ``--bootstrap`` too).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka.errors import KafkaError

from benchmarks.publish_history import BATCH, LAST_MONTH, MONTHS, History, say
from benchmarks.stream_throughput import broker_for
from hub.agreement.model import load_agreement
from hub.errors import HubError, PublishError
from hub.kafka.client import admin_client
from hub.kafka.security import client_config
from hub.ops.topics import TopicSpec, apply_topics, declared_topics
from hub.settings import HubSettings
from streams.publish.publisher import changelog_topic
from streams.publish.requests import service_running

REPO_ROOT = Path(__file__).resolve().parent.parent
PERIOD = f"{LAST_MONTH:%Y-%m}"
#: Versions built and produced at a time (the parent never holds every batch).
CHUNK = 50_000


def hub_command() -> list[str]:
    """The `hub` console script of this interpreter's environment, or `python -m hub.cli`."""
    script = Path(sys.executable).parent / "hub"
    return [str(script)] if script.exists() else [sys.executable, "-m", "hub.cli"]


# --- one measured child process ------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """One child process: how long it took, its CPU time and its peak RSS."""

    wall: float
    cpu: float
    peak_kb: int
    code: int
    stdout: str
    stderr: str

    @property
    def peak_mb(self) -> float:
        return self.peak_kb / 1024


def measured(argv: list[str], env: dict[str, str], work: Path, timeout: float) -> Run:
    """Run `argv` and wait for it with ``os.wait4``, whose resource usage is that child's
    own (and its waited-for descendants'): ru_maxrss is its peak RSS, not the largest
    of every child this process ever had, as RUSAGE_CHILDREN would give."""
    out, err = work / "child.out", work / "child.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=stdout, stderr=stderr, env=env, cwd=REPO_ROOT)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.002)
        wall = time.perf_counter() - start
    proc.returncode = code = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return Run(
        wall,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss,  # KiB on Linux
        code,
        out.read_text(errors="replace"),
        err.read_text(errors="replace"),
    )


# --- the broker and the changelog ------------------------------------------------------
@contextmanager
def kafka(args: argparse.Namespace, work: Path) -> Iterator[HubSettings]:
    """Settings for the broker at --bootstrap, or for one this run starts and stops."""
    heap = {"broker_heap": args.broker_heap} if args.broker_heap else {}
    with broker_for(HubSettings(**heap), args.bootstrap, work) as base:
        yield base


def changelog_spec(settings: HubSettings) -> TopicSpec:
    """The workers' changelog as Faust creates it for the record-versions table."""
    return TopicSpec(
        changelog_topic(settings), settings.case_partitions, {"cleanup.policy": "compact"}
    )


def write_changelog(settings: HubSettings, count: int, period_events: int) -> tuple[int, int]:
    """`count` versions from History on the changelog, in batches of BATCH, each batch to
    the next partition in turn, keyed as the worker keys them. (records, batches)."""
    from confluent_kafka import KafkaError as DeliveryError
    from confluent_kafka import Message, Producer

    producer = Producer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "client.id": "bench-publish-now-loader",
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 20,
            "message.max.bytes": 4 * 1024 * 1024,
            "queue.buffering.max.kbytes": 1_048_576,
            **client_config(settings).librdkafka(),
        }
    )
    failed: list[DeliveryError] = []

    def on_delivery(error: DeliveryError | None, _message: Message[bytes, bytes]) -> None:
        if error is not None:
            failed.append(error)

    topic = changelog_topic(settings)
    partitions = settings.case_partitions
    writer = uuid.uuid4().hex[:12]
    history = History(seed=7, count=count, period_events=period_events)
    sequence = 0
    while sequence * BATCH < count:
        if sequence * BATCH % (CHUNK * 4) == 0:
            say(f"  building and producing {sequence * BATCH:,} of {count:,} versions ...")
        for value in history.batches(min(CHUNK, count - sequence * BATCH)):
            partition = sequence % partitions
            sequence += 1
            key = json.dumps(f"{partition}:{writer}:{sequence}").encode()
            while True:
                try:
                    producer.produce(
                        topic, key=key, value=value, partition=partition, on_delivery=on_delivery
                    )
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
    remaining = producer.flush(300)
    if remaining or failed:
        raise RuntimeError(f"producing the changelog: {len(failed)} failed, {remaining} queued")
    return len(history.latest), sequence


def delete_topics(settings: HubSettings, names: list[str]) -> None:
    """Delete this size's topics; a failure is said, not raised (it must not hide another)."""
    try:
        admin = admin_client(settings, "bench-publish-now")
        try:
            admin.delete_topics(names)
        finally:
            admin.close()
    except (HubError, KafkaError) as exc:
        say(f"  could not delete the topics of {settings.topic_namespace}*: {exc}")


# --- one size ---------------------------------------------------------------------------
def check(run: Run, what: str, expected: str) -> None:
    if run.code != 0 or expected not in run.stdout:
        raise RuntimeError(
            f"{what}: exit {run.code}, expected {expected!r} in its output\n"
            f"stdout: {run.stdout.strip()}\nstderr (end): {run.stderr.strip()[-2000:]}"
        )


def measure_size(
    base: HubSettings, args: argparse.Namespace, work: Path, size: int, phases: bool
) -> dict[str, Any]:
    settings = base.model_copy(
        update={"topic_namespace": f"bench{uuid.uuid4().hex[:8]}.publish-now."}
    )
    specs = [
        *declared_topics(settings, load_agreement(settings.agreement)),
        changelog_spec(settings),
    ]
    apply_topics(settings, specs)
    try:
        say(f"{size:,} versions onto {changelog_topic(settings)} ...")
        start = time.perf_counter()
        records, batches = write_changelog(settings, size, args.period_events)
        say(f"  {batches:,} batches, {records:,} records in {time.perf_counter() - start:.1f} s")
        gc.collect()
        env = settings.to_env() | {"PYTHONUNBUFFERED": "1"}
        command = [*hub_command(), "publish", "--now", "--period", PERIOD, "--reason", "benchmark"]
        out: dict[str, Any] = {"versions": size, "records": records, "batches": batches}
        runs = []
        for number, expected in ((1, "released "), (2, "unchanged since revision 0")):
            say(f"  {' '.join(command[-4:])}, run {number} ...")
            run = measured(command, env, work, args.timeout)
            check(run, f"run {number} of `hub publish --now` with {size:,} versions", expected)
            say(f"    {run.wall:.2f} s, peak RSS {run.peak_mb:.0f} MB: {run.stdout.strip()}")
            runs.append(run)
        out["runs"] = [
            {"wall": r.wall, "cpu": r.cpu, "peak_mb": r.peak_mb, "said": r.stdout.strip()}
            for r in runs
        ]
        out.update(with_service(settings, env, command, work, args))
        if phases:
            say("  the publisher's phases, in-process (child process) ...")
            child = measured(
                [sys.executable, "-m", "benchmarks.publish_now", "--role", "phases"],
                env,
                work,
                args.timeout,
            )
            if child.code != 0:
                raise RuntimeError(f"the phases child exited {child.code}:\n{child.stderr}")
            out["phases"] = json.loads(child.stdout)
            out["phases"]["peak_mb"] = child.peak_mb
        return out
    finally:
        delete_topics(settings, [spec.name for spec in specs])


def with_service(
    settings: HubSettings,
    env: dict[str, str],
    command: list[str],
    work: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """The command twice more with the publisher service running, after one more batch."""
    say("  starting the publisher service on this history ...")
    env = env | {"HUB_PUBLISHER_METRICS_PORT": str(free_port())}
    log = work / f"publisher-{uuid.uuid4().hex[:6]}.log"
    with log.open("wb") as handle:
        service = subprocess.Popen(
            [*hub_command(), "streams", "publisher"],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
    try:
        start = time.perf_counter()
        while not service_running(settings):
            if service.poll() is not None or time.perf_counter() - start > args.timeout:
                raise RuntimeError(
                    f"the publisher service is not taking requests:\n{log.read_text()[-3000:]}"
                )
            time.sleep(0.5)
        ready = time.perf_counter() - start
        say(f"    taking requests after {ready:.1f} s")
        append_batch(settings)
        runs = []
        for number, expected in ((1, "released "), (2, "unchanged since revision 1")):
            say(f"  {' '.join(command[-4:])} with the service, run {number} ...")
            run = measured(command, env, work, args.timeout)
            check(run, f"run {number} of `hub publish --now` with the service", expected)
            if "asked the running publisher service" not in run.stderr:
                raise RuntimeError(f"run {number} did not ask the service: {run.stderr[-2000:]}")
            say(f"    {run.wall:.2f} s, peak RSS {run.peak_mb:.0f} MB: {run.stdout.strip()}")
            runs.append(run)
    finally:
        os.killpg(service.pid, signal.SIGTERM)
        try:
            service.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(service.pid, signal.SIGKILL)
            service.wait()
    return {
        "service_ready": ready,
        "service_runs": [
            {"wall": r.wall, "cpu": r.cpu, "peak_mb": r.peak_mb, "said": r.stdout.strip()}
            for r in runs
        ],
    }


def append_batch(settings: HubSettings) -> None:
    """One more batch of new versions, all dated in the month published."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        max_request_size=4 * 1024 * 1024,
        **client_config(settings).kafka_python(),
    )
    try:
        (value,) = History(seed=8, count=BATCH, period_events=BATCH).batches(BATCH)
        key = json.dumps(f"0:{uuid.uuid4().hex[:12]}:1").encode()
        producer.send(changelog_topic(settings), key=key, value=value, partition=0).get(60)
    finally:
        producer.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_phases() -> None:
    """In this (child) process, with the HUB_ environment of one size: where the time goes."""
    from hub.kafka.client import TopicReader
    from hub.periods import parse_period
    from streams.aggregate import protect_cells
    from streams.index import RecordIndex
    from streams.publish.publisher import Publisher
    from streams.records import decode_batch

    settings = HubSettings()
    agreement = load_agreement(settings.agreement)
    out: dict[str, float | int] = {}
    start = time.perf_counter()
    publisher = Publisher(settings, agreement, role="bench-phases")
    out["publisher_init_s"] = time.perf_counter() - start
    try:
        start = time.perf_counter()
        release = publisher.publish_now(PERIOD, reason="benchmark")
        out["publish_now_s"] = time.perf_counter() - start
    finally:
        publisher.close()
    if release.changed:
        raise RuntimeError("the phases' release found the period changed")
    del publisher
    gc.collect()

    topic = changelog_topic(settings)
    reader = TopicReader(
        settings,
        topic,
        "bench-phases",
        PublishError(f"no topic {topic}"),
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    try:
        start = time.perf_counter()
        values = [m.value for m in reader.read_to_end() if m.value is not None]
        out["read_s"] = time.perf_counter() - start
    finally:
        reader.close()
    out["batches"] = len(values)
    out["bytes"] = sum(len(v) for v in values)
    start = time.perf_counter()
    decoded = [decode_batch(v)[0] for v in values]
    out["decode_s"] = time.perf_counter() - start
    del values
    index = RecordIndex(agreement.taxonomy)
    start = time.perf_counter()
    for versions in decoded:
        index.merge(versions)
    out["merge_s"] = time.perf_counter() - start
    period = parse_period(PERIOD)[1]
    partners = [p.id for p in agreement.partners]
    start = time.perf_counter()
    cells = protect_cells(index.breakdowns(*period, partners), agreement.disclosure)
    out["cells_s"] = time.perf_counter() - start
    out["cells"] = len(cells)
    out["period_records"] = sum(1 for _ in index.in_period(*period))
    print(json.dumps(out))


# --- the report ---------------------------------------------------------------------------
def report(
    results: list[dict[str, Any]],
    startup: Run,
    load_start: tuple[float, float, float],
    args: argparse.Namespace,
) -> None:
    print(
        f"\n`hub publish --now --period {PERIOD}` against the history ({MONTHS} months,"
        f" about {args.period_events:,} versions in {PERIOD}; {os.cpu_count()} CPUs)"
    )
    print(
        f"load average at the start: {' '.join(f'{x:.2f}' for x in load_start)};"
        f" at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(
        f"a process that only imports the command and the publisher: {startup.wall:.2f} s,"
        f" peak RSS {startup.peak_mb:.0f} MB\n"
    )
    head = (
        "| versions | records on the changelog | batches | publish --now, 1st: wall s"
        " (CPU s) | 2nd: wall s (CPU s) | peak RSS MB, 1st | 2nd | service taking requests"
        " after, s | with the service, 1st (released): wall s | 2nd (unchanged): wall s |"
        " peak RSS MB, 1st |"
    )
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in results:
        first, second = r["runs"]
        served, again = r["service_runs"]
        print(
            f"| {r['versions']:,} | {r['records']:,} | {r['batches']:,} |"
            f" {first['wall']:.2f} ({first['cpu']:.2f}) | {second['wall']:.2f}"
            f" ({second['cpu']:.2f}) | {first['peak_mb']:.0f} | {second['peak_mb']:.0f} |"
            f" {r['service_ready']:.1f} | {served['wall']:.2f} | {again['wall']:.2f} |"
            f" {served['peak_mb']:.0f} |"
        )
    print("\nfirst run said: " + " / ".join(r["runs"][0]["said"] for r in results))
    print("with the service: " + " / ".join(r["service_runs"][0]["said"] for r in results))
    if len(results) > 1:
        small, large = results[0]["service_runs"], results[-1]["service_runs"]
        print(
            f"with the service, {results[-1]['versions']:,} / {results[0]['versions']:,}"
            f" versions: {large[0]['wall'] / small[0]['wall']:.1f}x (1st run),"
            f" {large[1]['wall'] / small[1]['wall']:.1f}x (2nd run)"
        )
    by_size = {r["versions"]: r for r in results}
    if 10_000 in by_size and 1_000_000 in by_size:
        small, large = by_size[10_000]["runs"], by_size[1_000_000]["runs"]
        print(
            f"1,000,000 / 10,000 versions: {large[0]['wall'] / small[0]['wall']:.1f}x (1st run),"
            f" {large[1]['wall'] / small[1]['wall']:.1f}x (2nd run)"
        )
    elif len(results) > 1:
        small, large = results[0], results[-1]
        print(
            f"{large['versions']:,} / {small['versions']:,} versions:"
            f" {large['runs'][0]['wall'] / small['runs'][0]['wall']:.1f}x (1st run),"
            f" {large['runs'][1]['wall'] / small['runs'][1]['wall']:.1f}x (2nd run)"
        )
    phased = [r for r in results if "phases" in r]
    for r in phased:
        p = r["phases"]
        print(
            f"\nin-process, {r['versions']:,} versions ({p['batches']:,} batches,"
            f" {p['bytes'] / 2**20:,.0f} MiB; {p['period_records']:,} records in {PERIOD},"
            f" {p['cells']:,} cells), seconds:\n"
        )
        print("| Publisher() | publish_now (unchanged) | read | decode | index merge | cells |")
        print("|---|---|---|---|---|---|")
        print(
            f"| {p['publisher_init_s']:.2f} | {p['publish_now_s']:.2f} | {p['read_s']:.2f} |"
            f" {p['decode_s']:.2f} | {p['merge_s']:.2f} | {p['cells_s']:.3f} |"
        )


# --- the run --------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.publish_now", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--sizes", default="10000,100000,1000000", help="versions, comma-separated")
    parser.add_argument(
        "--period-events",
        type=int,
        default=3_000,
        help=f"new records dated in the month published ({PERIOD}), whatever the size (about)",
    )
    parser.add_argument("--bootstrap", help="use this running broker instead of starting one")
    parser.add_argument(
        "--broker-heap", help="the started broker's JVM -Xmx (default: HUB_BROKER_HEAP's)"
    )
    parser.add_argument(
        "--no-phases", action="store_true", help="skip the in-process phases of the largest size"
    )
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds a child process may take"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--role", choices=("main", "phases"), default="main", help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    try:
        args.size_list = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes must be integers separated by commas, not {args.sizes!r}")
    if min(args.size_list) < 1 or args.period_events < 1:
        parser.error("--sizes and --period-events must be positive")
    return args


def measure(args: argparse.Namespace, work: Path) -> None:
    load_start = os.getloadavg()
    say(f"load average: {' '.join(f'{x:.2f}' for x in load_start)}")
    startup = measured(
        [sys.executable, "-c", "import hub.cli.main, streams.publish.publisher"],
        dict(os.environ),
        work,
        args.timeout,
    )
    largest = max(args.size_list)
    results = []
    with kafka(args, work) as base:
        for size in args.size_list:
            phases = not args.no_phases and size == largest
            results.append(measure_size(base, args, work, size, phases))
    report(results, startup, load_start, args)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role == "phases":
        run_phases()
        return 0
    # SIGTERM unwinds like Ctrl-C, so the broker this run started stops.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="hub-publish-now-bench-"))
    try:
        measure(args, work)
    finally:
        if args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
