"""Recovery after SIGKILL: how soon a killed and restarted stream worker serves again, and
its resident memory after recovery against before the kill.

Run from the repository root::

    .venv/bin/python -m benchmarks.recovery [--events 100000,1000000] [--stores memory,rocksdb]

It starts its own Kafka broker (temporary state directory, free ports; stopped
at the end, also on error) unless ``--bootstrap`` names one that answers. For
each history size N it builds N realistic encoded case events over about N/4
subjects (``benchmarks.stream_throughput.make_events``: replays, corrections,
withdrawals) and ``--new`` further events of records not in the history; then,
for each store (HUB_STORE ``memory://`` or ``rocksdb://``) and each kind of
group membership (a static member id, HUB_WORKER_INSTANCE_ID=bench-worker-1,
or none: dynamic; ``--dynamic-stores`` says which stores are also run without
one, ``--quick`` drops the dynamic runs at 1,000,000 events and more), in a
fresh topic namespace with its own HUB_WORKER_DATA directory:

1. the N events are produced to the agency topics, and ``hub streams worker``
   (``python -m hub.cli streams worker``, the HUB_* environment, its own
   process group) is started and left to read them all: its
   ``hub_events_consumed_total`` is N, its consumer group's committed offsets
   cover them (``hub_consumer_group_lag`` 0, so every changelog batch is
   written) and ``hub_events_counted`` (the live records) and
   ``hub_version_batches_written_total`` no longer change. Its VmRSS then is
   "RSS before";
2. the worker's process group is sent SIGKILL and a new worker is started at
   once with the same settings (the same HUB_WORKER_DATA, the same member id
   when static); right after, the new events are produced. Timed from the
   kill: the new worker's /metrics answering; its partitions recovered
   (``hub_worker_recovering`` 0); and serving again: ``hub_events_counted``
   equal to the live records before plus the new events' live records (worked
   out by decoding them). Its VmRSS once it serves is "RSS after" (VmHWM, its
   peak, is reported too), and ``--settle`` seconds (10) later the count and
   VmRSS are read again.

The group session timeout is HUB_SESSION_TIMEOUT (``--session-timeout``,
default 30 s, the setting's default): without a static member id the group
waits for the killed member's session to expire before it gives the
partitions to the new one. Progress goes to stderr, the tables to stdout.
Nothing is asserted; a worker that does not serve again within
``--serve-timeout`` is reported as such and the run goes on.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.stream_throughput import (
    Children,
    check_partners,
    free_port,
    kafka,
    make_events,
    partnership,
    produce,
    rss_kb,
    say,
)
from hub.codec import Codec
from hub.ops.topics import apply_topics, declared_topics
from hub.settings import HubSettings
from tests.support.processes import scrape

REPO_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_ID = "bench-worker-1"
STORES = {"memory": "memory://", "rocksdb": "rocksdb://"}
#: At this size and above, --quick runs no dynamic-membership case.
QUICK_LIMIT = 1_000_000

Messages = list[tuple[str, bytes, bytes]]  # topic (without namespace), key, value
Samples = dict[str, float]


@dataclass
class Outcome:
    """One (store, membership, size) run; memory in KiB, times in seconds from the kill."""

    store: str
    static: bool
    events: int
    live: float = 0.0  # hub_events_counted before the kill
    consume_seconds: float = 0.0  # the first worker, start to caught up
    rss_before: int = 0
    peak_before: int = 0
    metrics_up: float | None = None
    recovered: float | None = None
    serving: float | None = None
    rss_after: int | None = None
    peak_after: int | None = None
    rss_settled: int | None = None  # --settle seconds after serving
    batches: float = 0.0  # changelog batches written before the kill
    reread: float | None = None  # events the new worker read besides the new ones
    note: str = ""


def peak_kb(pid: int) -> int:
    """VmHWM (peak resident memory) of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def live_records(messages: Messages) -> int:
    """Records whose highest version is not a withdrawal: what the worker counts."""
    decode = Codec("case_event").decode
    held: dict[str, tuple[int, bool]] = {}
    for _, _, value in messages:
        record = decode(value)
        key, version = record["record_key"], record["record_version"]
        before = held.get(key)
        if before is None or version > before[0]:
            held[key] = (version, record["event_type"] != "WITHDRAWN")
    return sum(live for _, live in held.values())


def named(messages: Messages, namespace: str) -> Messages:
    return [(namespace + topic, key, value) for topic, key, value in messages]


# --- the worker process ----------------------------------------------------------------
class WorkerRun:
    """`hub streams worker` as a child in its own process group, its output to `log`."""

    def __init__(self, settings: HubSettings, log: Path, children: Children) -> None:
        self.settings = settings
        self.log = log
        self.children = children
        self.url = f"http://127.0.0.1:{settings.metrics_port}/metrics"

    def start(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", "streams", "worker"],
                env=self.settings.to_env() | {"PYTHONUNBUFFERED": "1"},
                cwd=REPO_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.children.procs.append(proc)  # stopped on exit, also on error
        return proc

    def samples(self) -> Samples | None:
        try:
            return scrape(self.url)
        except OSError:
            return None

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        self.children.stop(proc)  # gone already: only forgotten

    def tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def group_lag(samples: Samples) -> float | None:
    lags = [v for k, v in samples.items() if k.startswith("hub_consumer_group_lag{")]
    return sum(lags) if lags else None


def watchdog_actions(samples: Samples) -> str:
    """The restarted worker's watchdog actions (``hub_worker_stall_actions_total``), if any."""
    prefix = 'hub_worker_stall_actions_total{action="'
    acted = {k[len(prefix) : -2]: v for k, v in samples.items() if k.startswith(prefix) and v}
    return ", ".join(f"{action} {count:.0f}" for action, count in sorted(acted.items()))


def caught_up(worker: WorkerRun, proc: subprocess.Popen[bytes], n: int, timeout: float) -> Samples:
    """Wait until the worker has read all n, its offsets are committed and its counts
    and batches stay put for a second; its metrics then."""
    start = time.monotonic()
    last: tuple[float, float] | None = None
    next_report = start + 15
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited with {proc.returncode}:\n{worker.tail()}")
        samples = worker.samples() or {}
        consumed = samples.get("hub_events_consumed_total", 0.0)
        if time.monotonic() >= next_report:
            say(f"  consumed {consumed:,.0f} of {n:,} ...")
            next_report += 15
        counted = samples.get("hub_events_counted")
        if consumed >= n and group_lag(samples) == 0 and counted is not None:
            now = (counted, samples.get("hub_version_batches_written_total", 0.0))
            if now == last:
                return samples
            last = now
        else:
            last = None
        time.sleep(1.0)
    raise RuntimeError(f"the worker did not catch up with {n:,} events within {timeout:.0f} s")


def watch_restart(
    worker: WorkerRun,
    proc: subprocess.Popen[bytes],
    outcome: Outcome,
    expected: float,
    killed: float,
    timeout: float,
) -> Samples | None:
    """Fill in the times from the kill; the metrics once serving, None if it never does."""
    next_report = killed + 10
    while (now := time.monotonic()) - killed < timeout:
        if proc.poll() is not None:
            outcome.note = f"restarted worker exited with {proc.returncode}"
            return None
        samples = worker.samples()
        if samples is not None:
            since = time.monotonic() - killed
            if outcome.metrics_up is None:
                outcome.metrics_up = since
            counted = samples.get("hub_events_counted")
            if outcome.recovered is None and counted is not None:
                outcome.recovered = since  # hub_worker_recovering 0: counts served
            if counted is not None and counted >= expected:
                outcome.serving = since
                return samples
            if now >= next_report:
                say(
                    f"  {now - killed:.0f} s: recovering {samples.get('hub_worker_recovering')},"
                    f" counted {counted}, expected {expected:,.0f}"
                )
                next_report += 10
        time.sleep(0.05)
    outcome.note = f"not serving within {timeout:.0f} s"
    return None


# --- one run -------------------------------------------------------------------------------
@dataclass
class Inputs:
    """What every run at one size produces: the history, the new events, their live records."""

    history: Messages
    history_live: int
    new: Messages
    new_live: int


def run_settings(
    base: HubSettings, work: Path, label: str, static: bool, store: str
) -> HubSettings:
    return base.model_copy(
        update={
            "topic_namespace": f"bench{uuid.uuid4().hex[:8]}.recovery.",
            "store": STORES[store],
            "worker_data": work / f"{label}-data",
            "metrics_port": free_port(),
            "worker_instance_id": INSTANCE_ID if static else None,
        }
    )


def one_run(
    base: HubSettings,
    inputs: Inputs,
    outcome: Outcome,
    args: argparse.Namespace,
    children: Children,
    work: Path,
) -> None:
    n = outcome.events
    label = f"{outcome.store}-{'static' if outcome.static else 'dynamic'}-{n}"
    settings = run_settings(base, work, label, outcome.static, outcome.store)
    apply_topics(settings, declared_topics(settings, partnership(settings.agreement)))
    say(f"[{label}] producing {n:,} events to {settings.topic_namespace}* ...")
    produce(settings, named(inputs.history, settings.topic_namespace))
    worker = WorkerRun(settings, work / f"{label}.log", children)
    started = time.monotonic()
    proc = worker.start()
    say(f"[{label}] worker {proc.pid} reading them ...")
    before = caught_up(worker, proc, n, max(600.0, n / 300))
    outcome.consume_seconds = time.monotonic() - started
    outcome.live = before["hub_events_counted"]
    outcome.batches = before["hub_version_batches_written_total"]
    outcome.rss_before, outcome.peak_before = rss_kb(proc.pid), peak_kb(proc.pid)
    if outcome.live != inputs.history_live:
        outcome.note = f"counted {outcome.live:,.0f} before, expected {inputs.history_live:,}"
    say(
        f"[{label}] caught up in {outcome.consume_seconds:.0f} s: {outcome.live:,.0f} live"
        f" records, VmRSS {outcome.rss_before / 1024:,.0f} MB; SIGKILL and restart ..."
    )
    killed = time.monotonic()
    worker.kill(proc)
    proc = worker.start()
    produce(settings, named(inputs.new, settings.topic_namespace))
    expected = outcome.live + inputs.new_live
    after = watch_restart(worker, proc, outcome, expected, killed, args.serve_timeout)
    if after is None:
        say(f"[{label}] {outcome.note}; its log ends:\n{worker.tail()}")
    else:
        outcome.rss_after, outcome.peak_after = rss_kb(proc.pid), peak_kb(proc.pid)
        outcome.reread = after["hub_events_consumed_total"] - len(inputs.new)
        if acted := watchdog_actions(after):
            outcome.note += f" watchdog acted: {acted}"
        time.sleep(args.settle)
        counted = (worker.samples() or {}).get("hub_events_counted")
        outcome.rss_settled = rss_kb(proc.pid)
        if counted != expected:
            outcome.note += f" counted {counted} {args.settle:g} s later, expected {expected:,.0f}"
        say(f"[{label}] serving again {outcome.serving:.1f} s after the kill")
    children.stop(proc)
    shutil.rmtree(settings.worker_data, ignore_errors=True)


# --- report ---------------------------------------------------------------------------------
def mb(kib: float | None) -> str:
    return "-" if kib is None else f"{kib / 1024:,.0f}"


def secs(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f}"


def report(outcomes: list[Outcome], args: argparse.Namespace, load_start: Sequence[float]) -> None:
    print(
        f"\nRecovery after SIGKILL: {args.partitions} partitions per agency topic,"
        f" session timeout {args.session_timeout:g} s, {args.new:,} new events"
        f" produced after the restart, {os.cpu_count()} CPUs"
    )
    print(
        f"load average at the start: {' '.join(f'{x:.2f}' for x in load_start)};"
        f" at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n"
    )
    print(
        "| store | static id | N | live records | s kill -> metrics up"
        " | s kill -> serving again | RSS before MB | RSS after MB | ratio |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for o in outcomes:
        ratio = "-" if o.rss_after is None else f"{o.rss_after / o.rss_before:.2f}"
        print(
            f"| {o.store} | {'yes' if o.static else 'no'} | {o.events:,} | {o.live:,.0f}"
            f" | {secs(o.metrics_up)} | {secs(o.serving)} | {mb(o.rss_before)}"
            f" | {mb(o.rss_after)} | {ratio} |"
        )
    print(
        "\n| store | static id | N | first read, s | changelog batches | s kill -> recovered"
        f" | events re-read | peak RSS before MB | peak RSS after MB | RSS {args.settle:g} s"
        " after serving MB | note |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for o in outcomes:
        reread = "-" if o.reread is None else f"{o.reread:,.0f}"
        print(
            f"| {o.store} | {'yes' if o.static else 'no'} | {o.events:,}"
            f" | {o.consume_seconds:.0f} | {o.batches:,.0f} | {secs(o.recovered)} | {reread}"
            f" | {mb(o.peak_before)} | {mb(o.peak_after)} | {mb(o.rss_settled)}"
            f" | {o.note.strip()} |"
        )


# --- the run --------------------------------------------------------------------------------
def plan(args: argparse.Namespace, n: int) -> list[Outcome]:
    runs = []
    for store in args.stores:
        runs.append(Outcome(store, True, n))
        if store in args.dynamic_stores and not (args.quick and n >= QUICK_LIMIT):
            runs.append(Outcome(store, False, n))
    return runs


def build(base: HubSettings, n: int, new: int) -> Inputs:
    plain = base.model_copy(update={"topic_namespace": ""})  # prefixed per run
    say(f"building {n:,} case events over {max(n // 4, 1):,} subjects ...")
    history = make_events(plain, n, max(n // 4, 1)).messages
    fresh = make_events(plain, new, max(new // 4, 1), seed=77).messages
    say("working out their live records ...")
    return Inputs(history, live_records(history), fresh, live_records(fresh))


def measure(args: argparse.Namespace, work: Path, children: Children) -> None:
    load_start = os.getloadavg()
    outcomes: list[Outcome] = []
    with kafka(args, work) as base:
        base = base.model_copy(update={"session_timeout": args.session_timeout})
        check_partners(partnership(base.agreement))
        for n in args.events:
            inputs = build(base, n, args.new)
            for outcome in plan(args, n):
                outcomes.append(outcome)
                one_run(base, inputs, outcome, args, children, work)
            del inputs
    report(outcomes, args, load_start)


def listed(text: str, allowed: Sequence[str]) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    wrong = [item for item in items if item not in allowed]
    if wrong:
        raise argparse.ArgumentTypeError(f"{', '.join(wrong)}: not one of {', '.join(allowed)}")
    return items


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.recovery", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--events",
        type=lambda text: [int(x.replace("_", "")) for x in text.split(",") if x.strip()],
        default=[100_000, 1_000_000],
        help="history sizes, comma-separated (default 100000,1000000)",
    )
    parser.add_argument(
        "--stores", type=lambda text: listed(text, list(STORES)), default=list(STORES)
    )
    parser.add_argument(
        "--dynamic-stores",
        type=lambda text: listed(text, list(STORES)),
        default=["memory"],
        help="stores also run without a static member id (default memory)",
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"no dynamic runs at {QUICK_LIMIT:,} events or more"
    )
    parser.add_argument("--new", type=int, default=1_000, help="events produced after restart")
    parser.add_argument("--partitions", type=int, default=6, help="partitions per agency topic")
    parser.add_argument("--session-timeout", type=float, default=30.0, help="HUB_SESSION_TIMEOUT")
    parser.add_argument(
        "--serve-timeout", type=float, default=900.0, help="seconds to wait for serving again"
    )
    parser.add_argument(
        "--settle", type=float, default=10.0, help="seconds after serving to read VmRSS again"
    )
    parser.add_argument("--bootstrap", help="use this running broker instead of starting one")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if min([*args.events, args.new, args.partitions]) < 1 or not args.stores:
        parser.error("--events, --new and --partitions must be positive, --stores not empty")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the workers and the broker this run started stop.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="hub-recovery-bench-"))
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
