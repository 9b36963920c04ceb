"""What `hub adapter ...` does: build the pipeline from settings and run it on sources.

One-shot files, a watched drop folder (processed files move to ``done/`` or
``failed/``), and the dry run behind `hub adapter check`. The outbox is
drained after every source; while Kafka is down the adapter keeps reading
and the events wait in the outbox. In the watch and serve modes a supervised
forwarder (`Forwarder.follow`) sends beside the reading, retrying any outage or
disk error; only a damaged outbox stops it, and then the whole run, with exit
status 1 and a message saying what to do. Every run counts into `adapters.metrics`;
`metrics_served` serves them (HUB_ADAPTER_METRICS_PORT, `--metrics-port`).

The runner drives the sources: it opens them (files, a query from its stored
watermark) and reads them through the pipeline; the push endpoint stores
through the run, its `Sink`. What it reports is printed with `adapters.console`.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry

from adapters.console import progress as progress_bar
from adapters.console import say
from adapters.drain import counting_sent_elsewhere, drain_process, forwarding_thread
from adapters.mapping import check_risk_codes
from adapters.metrics import AdapterMetrics, OutboxHealth, outbox_health, reject_field
from adapters.metrics import serve as serve_metrics
from adapters.outbox import Outbox, Pruned, audit_item, pending_summary
from adapters.pipeline import Adapter, Forwarder, RunSummary, summarise
from adapters.profile import Profile, load_profile, sharing_scope
from adapters.publishers.factory import make_publisher
from adapters.sources.base import Source, SourceKind
from adapters.sources.delimited import CsvSource, FileError
from adapters.sources.jsonl import JsonLinesSource
from adapters.versions import SnapshotCheck
from hub import audit
from hub.agreement.model import Agreement, Retention, load_agreement
from hub.errors import HubError, OutboxError
from hub.minimise import Minimiser
from hub.ops.retention import StoreAge
from hub.pseudonymise import Pseudonymiser
from hub.settings import HubSettings

log = logging.getLogger(__name__)
PROGRESS_ABOVE_BYTES = 1_000_000
DAY = 24 * 60 * 60
#: Kinds of source read from a text file, whose lines a progress bar can count.
TEXT_KINDS: tuple[SourceKind, ...] = ("csv", "tsv", "jsonl")
#: Workbooks, read by adapters.sources.spreadsheet (python-calamine, the `spreadsheet` extra).
WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods")
FILE_SUFFIXES = (".csv", ".tsv", ".txt", ".jsonl", ".json", *WORKBOOK_SUFFIXES)


def file_source(path: Path, profile: Profile) -> Source:
    if path.suffix.lower() in WORKBOOK_SUFFIXES:
        from adapters.sources.spreadsheet import SpreadsheetSource

        return SpreadsheetSource(path, profile)
    if profile.format == "jsonl" or path.suffix.lower() in (".jsonl", ".json"):
        return JsonLinesSource(path, profile)
    return CsvSource(path, profile)


def count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


@dataclass
class AdapterRun:
    settings: HubSettings
    profile: Profile
    adapter: Adapter
    outbox: Outbox | None
    forwarder: Forwarder | None
    #: The partnership and the profile's name, for the submissions' audit entries.
    partnership: str = ""
    profile_name: str = ""
    #: The agreement's retention (`apply_retention`) and where quarantine reports go.
    retention: Retention | None = None
    quarantine: Path | None = None

    @property
    def metrics(self) -> AdapterMetrics | None:
        """None for a dry run."""
        return self.adapter.metrics

    @property
    def storing(self) -> bool:
        """False for a dry run."""
        return self.outbox is not None

    def retain(self) -> None:
        """Apply the agreement's retention to the outbox and the quarantine reports."""
        if self.outbox is not None and self.retention is not None:
            apply_retention(self.outbox, self.quarantine, self.retention)

    def ingest(self, source: Source) -> RunSummary:
        """Read `source` into the outbox (a pushed request); returns once it is committed."""
        return self._audited(self.adapter.ingest(source), source.kind)

    def _audited(self, summary: RunSummary, kind: str) -> RunSummary:
        """Store the submission's audit entry (`hub.audit`) in the outbox, after its
        events: counts by change and rejects by field, never a value or a file name."""
        if self.outbox is None:
            return summary
        detail = {
            "agency": self.adapter.versioner.agency,
            "profile": self.profile_name,
            "source_kind": kind,
            "read": summary.read,
            "new": summary.changes["new"],
            "changed": summary.changes["corrected"],
            "withdrawn": summary.changes["withdrawn"],
            "unchanged": summary.changes["unchanged"],
            "rejected": dict(Counter(reject_field(e) for e in summary.rejected)),
            "resent": summary.resent is not None,
            "withdrawals_held": summary.refused is not None,
        }
        record = audit.entry("SUBMISSION", self.partnership, self.settings, detail)
        self.outbox.put_audit([audit_item(self.settings, record)])
        return summary

    def health(self) -> OutboxHealth:
        """The outbox and this run's forwarder (see `adapters.metrics.outbox_health`)."""
        outbox = self.outbox
        if outbox is None:
            raise HubError("a dry run has no outbox")
        status = None if self.forwarder is None else self.forwarder.status
        stale_after = self.settings.forwarder_stale_after
        return outbox_health(
            lambda: (outbox.counts()[0], outbox.oldest_pending()), status, stale_after
        )

    def ingest_query(
        self, url: str, query: str, watermark_column: str, name: str | None = None
    ) -> RunSummary:
        """Read a database query (`adapters.sources.sql`) from its stored watermark on.

        A dry run (no outbox) reads everything, as there is no watermark to resume from.
        `name` (default: the URL without its password, and a digest of the query) keys
        the watermark, so keep it the same from run to run.
        """
        from adapters.sources.sql import SqlSource

        separator = self.profile.multi_value_separator
        source = SqlSource(url, query, watermark_column, None, name, separator)
        if self.outbox is not None:
            source.since = self.outbox.watermark(source.name)
        return self._audited(self.adapter.ingest(source, watermark=source.watermark_of), "sql")

    def ingest_file(self, path: Path, accept_withdrawals: bool = False) -> RunSummary:
        """One export file: a re-send of a file already ingested changes nothing; a full
        export (profile ``export: full``) withdraws the live records it no longer lists."""
        source = file_source(path, self.profile)
        digest = self._file_digest(path)
        agency = self.adapter.versioner.agency
        resent = None
        if self.outbox is not None and digest is not None:
            resent = self.outbox.file_ingested(agency, digest)
        summary = self._ingest_file(
            path, source, self.profile.export == "full", accept_withdrawals, resent
        )
        if self.outbox is not None and digest is not None and summary.refused is None:
            self.outbox.record_file(agency, digest, path.name)
        return self._audited(summary, source.kind)

    def _file_digest(self, path: Path) -> str | None:
        """A keyed digest of the file's bytes (None when it cannot be read: the source says why)."""
        mac = self.adapter.pseudonymiser.file_mac(self.adapter.versioner.agency)
        try:
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    mac.update(chunk)
        except OSError:
            return None
        return mac.hexdigest()

    def _ingest_file(
        self,
        path: Path,
        source: Source,
        snapshot: bool,
        accept_withdrawals: bool,
        resent: tuple[str, float] | None,
    ) -> RunSummary:
        def ingest(progress: Callable[[int], None] | None = None) -> RunSummary:
            return self.adapter.ingest(
                source,
                progress=progress,
                snapshot=snapshot,
                accept_withdrawals=accept_withdrawals,
                resent=resent,
            )

        text = source.kind in TEXT_KINDS  # lines counted: text files only
        if not text or path.stat().st_size < PROGRESS_ABOVE_BYTES:
            return ingest()
        with progress_bar(max(count_lines(path) - 1, 1), path.name) as advance:
            return ingest(advance)

    def drain(self, timeout: float | None) -> int:
        if self.forwarder is None:
            return 0
        return self.forwarder.drain(timeout)

    @contextmanager
    def forwarding_in_background(
        self,
        poll: float = 2.0,
        separate_process: bool = False,
        on_failure: Callable[[], None] | None = None,
    ) -> Iterator[None]:
        """Drain the outbox beside the caller, which keeps ingesting.

        In a thread (its own SQLite connection) for the watch and serve modes; in a
        separate process (``python -m adapters.drain --follow``) for large files, where
        reading and sending are both CPU-bound Python and each gets a core. See
        `adapters.drain`.

        The thread's forwarder is supervised (`Forwarder.follow`): it waits out any
        outage and reports its state on the run's metrics and /health. When it cannot
        go on (a damaged outbox) it calls `on_failure`, so that the caller stops, and
        the block then raises its `OutboxError`.
        """
        if self.forwarder is None:
            yield
            return
        if separate_process:
            with (
                counting_sent_elsewhere(self.outbox, self.metrics),
                drain_process(self.settings, self.adapter.agency, poll),
            ):
                yield
            return
        client_id = f"hub-adapter-{self.adapter.versioner.agency}"
        with forwarding_thread(
            self.settings, self.forwarder, self.metrics, client_id, poll, on_failure
        ):
            yield


@contextmanager
def adapter_run(
    settings: HubSettings,
    profile_name: str,
    agency: str | None,
    dry_run: bool = False,
    quarantine: Path | None = Path("quarantine"),
    metrics: AdapterMetrics | None = None,
    agreement: Agreement | None = None,
) -> Iterator[AdapterRun]:
    """The pipeline for `profile_name`, counting on `metrics` (new ones, on a registry of
    their own, by default; pass the same ones to keep counting across runs), under
    `agreement` (by default the one at HUB_AGREEMENT)."""
    profile = load_profile(profile_name)
    # The agreement's local risk codes join the starter ones: a profile may map to them;
    # its areas are all an area cell may name.
    if agreement is None:
        agreement = load_agreement(settings.agreement)
    taxonomy = agreement.taxonomy
    check_risk_codes(profile, taxonomy)  # before anything is opened
    agency_id = agency or profile.agency
    # What the agreement lets this partner share, narrowed by the profile, never widened.
    partners = {partner.id: partner for partner in agreement.partners}
    share = None  # not a partner: the profile's own list (the ACLs keep it off Kafka)
    if agency_id in partners:
        share = sharing_scope(profile, agency_id, partners[agency_id].shares)
    outbox = None if dry_run else Outbox(settings.outbox)
    publisher = None if dry_run else make_publisher(settings, f"hub-adapter-{agency_id}")
    if dry_run:
        metrics = None
    else:
        metrics = metrics or AdapterMetrics(CollectorRegistry(), agency_id)
        metrics.watch_outbox(lambda: pending_summary(settings.outbox))
    adapter = Adapter(
        profile,
        settings.case_topic(agency_id),
        Pseudonymiser.from_settings(settings),
        outbox,
        None if dry_run else quarantine,
        Minimiser.from_settings(settings),
        taxonomy=taxonomy,
        agency=agency_id,
        metrics=metrics,
        snapshot_check=SnapshotCheck(settings.withdrawal_limit),
        areas=agreement.area_vocabulary,
        share=share,
    )
    forwarder = None
    if outbox is not None and publisher is not None:
        forwarder = Forwarder.from_settings(
            settings, outbox, metrics, client_id=f"hub-adapter-{agency_id}", publisher=publisher
        )
    try:
        name = Path(profile_name).stem if profile_name.endswith((".yaml", ".yml")) else profile_name
        run = AdapterRun(
            settings,
            profile,
            adapter,
            outbox,
            forwarder,
            agreement.partnership,
            name,
            agreement.retention,
            quarantine,
        )
        yield run
        run.retain()
    finally:
        if forwarder is not None:
            forwarder.close()
        if publisher is not None:
            try:
                publisher.close()
            except Exception as exc:  # never hide why the run ended
                log.warning("the Kafka client did not close cleanly: %s", exc)
        if outbox is not None:
            outbox.close()


#: A quarantine report's name (`adapters.pipeline.Adapter`): ``<source>.rejects.csv``.
QUARANTINE_REPORTS = "*.rejects.csv"


def apply_retention(
    outbox: Outbox,
    quarantine: Path | None,
    retention: Retention,
    now: Callable[[], float] = time.time,
) -> tuple[Pruned, int]:
    """Delete from the outbox what was sent more than the agreement's `outbox_days` ago
    (a withdrawn record's state and its withdrawal: `case_events_days`), and quarantine
    reports older than its `quarantine_keep_days` (by when they were written); what was
    deleted, said in one line when anything was."""
    pruned = outbox.prune(
        now() - retention.outbox_days * DAY, now() - retention.case_events_days * DAY
    )
    reports = 0
    if quarantine is not None and quarantine.is_dir():
        cutoff = now() - retention.quarantine_keep_days * DAY
        for report in quarantine.glob(QUARANTINE_REPORTS):
            if report.stat().st_mtime < cutoff:
                report.unlink(missing_ok=True)
                reports += 1
    if pruned.events or pruned.audit_entries or pruned.record_states or pruned.file_digests:
        say(f"outbox: {pruned.summary()} ({retention.outbox_days} days)")
    if reports:
        days = retention.quarantine_keep_days
        say(f"quarantine: {reports} reports older than {days} days deleted")
    return pruned, reports


def local_ages(
    outbox_path: Path | None, quarantine: Path | None, retention: Retention
) -> list[StoreAge]:
    """The agency's stores for `hub retention report`: what its outbox holds (sent events,
    events not yet sent, sent audit entries, ingested files' digests) and its quarantine
    reports, each with its oldest item and the agreement's retention."""
    ages: list[StoreAge] = []
    if outbox_path is not None:
        outbox = Outbox(outbox_path)
        try:
            held = outbox.oldest()
        finally:
            outbox.close()
        kept = {
            "pending event": "kept until Kafka acknowledges it",
            "live record's last event": "kept while the record is live, to withdraw it",
        }
        for what, when in held.items():
            days = None if what in kept else retention.outbox_days
            if what == "withdrawn record's state":
                days = retention.case_events_days
            note = kept.get(what, "")
            oldest = None if when is None else datetime.fromtimestamp(when, UTC)
            ages.append(StoreAge(f"outbox {what}", oldest, days, note))
    if quarantine is not None:
        times = [p.stat().st_mtime for p in quarantine.glob(QUARANTINE_REPORTS)]
        oldest = datetime.fromtimestamp(min(times), UTC) if times else None
        days = retention.quarantine_keep_days
        ages.append(StoreAge(f"quarantine reports in {quarantine}", oldest, days))
    return ages


@contextmanager
def metrics_served(run: AdapterRun, port: int) -> Iterator[str | None]:
    """Serve the run's metrics on `port` (0: not at all) while the block runs; the URL."""
    if port == 0 or run.metrics is None:
        yield None
        return
    with serve_metrics(run.metrics.registry, run.settings.metrics_host, port) as url:
        say(f"adapter metrics on {url}")
        yield url


def run_files(
    run: AdapterRun, files: Iterable[Path], drain_timeout: float, accept_withdrawals: bool = False
) -> None:
    """Ingest each file in order while the outbox is forwarded in the background, then
    send the rest. A full export whose withdrawals are held back stops the run there
    (what was stored is still sent) with a HubError saying how to confirm them."""
    summaries: list[RunSummary] = []
    with run.forwarding_in_background(poll=0.2, separate_process=True):
        for path in files:
            summaries.append(_ingest_and_report(run, path, accept_withdrawals))
            if summaries[-1].refused is not None:
                break
    run.drain(drain_timeout)
    say(f"{summarise(summaries)}; every stored event is acknowledged by Kafka")
    if summaries and summaries[-1].refused is not None:
        raise HubError(summaries[-1].refused)


def _ingest_and_report(run: AdapterRun, path: Path, accept_withdrawals: bool = False) -> RunSummary:
    summary = run.ingest_file(path, accept_withdrawals)
    report(summary)
    return summary


def report(summary: RunSummary) -> None:
    """A source's rejects and warnings (the first 20 of each) and its summary line."""
    for label, errors in (
        ("rejected", summary.rejected),
        ("kept with a warning", summary.warnings),
    ):
        for error in errors[:20]:
            say(f"{label}: {error}", err=True)
        if len(errors) > 20:
            say(f"... and {len(errors) - 20} more in the quarantine report", err=True)
    if summary.resent is not None:
        name, when = summary.resent
        stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(when))
        say(f"{summary.source}: identical to {name}, ingested {stamp}: nothing to send")
    say(summary.line())


def run_query(run: AdapterRun, url: str, query: str, watermark: str, drain_timeout: float) -> None:
    """Read new rows of a database query (adapters.sources.sql), then send them."""
    summary = run.ingest_query(url, query, watermark)
    say(summary.line())
    sent = run.drain(drain_timeout)
    say(f"{summarise([summary])}; {sent} sent to Kafka")


def serve(run: AdapterRun, host: str, port: int, tokens_file: Path | None) -> None:
    """The HTTP push endpoint until SIGTERM or Ctrl-C (adapters.sources.http_push), with
    the limits and TLS of the run's HUB_PUSH_* settings; then the forwarder stops."""
    from adapters.sources.http_push import Limits, tls_context
    from adapters.sources.http_push import serve as open_endpoint

    if tokens_file is None:
        raise HubError('--serve needs --tokens FILE: JSON {"<bearer token>": "<provider>"}')
    try:
        tokens = json.loads(tokens_file.read_text())
    except (OSError, ValueError) as exc:
        raise HubError(f"cannot read the tokens file {tokens_file}: {exc}") from exc
    if not isinstance(tokens, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tokens.items()
    ):
        raise HubError(f'{tokens_file} must be a JSON object {{"<bearer token>": "<provider>"}}')
    settings = run.settings
    tls = tls_context(settings.push_tls_certfile, settings.push_tls_keyfile)
    limits = Limits(
        max_body=settings.push_max_body,
        max_connections=settings.push_max_connections,
        read_timeout=settings.push_read_timeout,
    )
    endpoint = open_endpoint(run, host, port, tokens, limits=limits, tls=tls)
    say(f"accepting events at {endpoint.url}/events (SIGTERM or Ctrl-C stops)")
    with run.forwarding_in_background(on_failure=endpoint.stop):
        endpoint.serve_forever()


def check_file(run: AdapterRun, path: Path) -> RunSummary:
    """Dry run: map every row, publish nothing. HubError when no row is usable."""
    summary = run.ingest_file(path)
    if summary.accepted == 0:
        raise HubError(
            f"{path}: no usable rows ({summary.read} read, {len(summary.rejected)} rejected)."
            f" Is this an export for the {run.profile.agency} profile? The first reasons:"
            f" {summary.reasons()[:3]}"
        )
    return summary


def watch(
    run: AdapterRun, folder: Path, poll: float = 2.0, settle: float = 1.0, once: bool = False
) -> None:
    """Process each new file in `folder`, moving it to done/ or failed/; Ctrl-C (and
    SIGTERM under `hub adapter run --watch`) stops, with "stopped watching".

    A file is taken once it has not changed for `settle` seconds, so one still
    being copied in is left for the next pass.
    """
    done, failed = folder / "done", folder / "failed"
    done.mkdir(parents=True, exist_ok=True)
    failed.mkdir(parents=True, exist_ok=True)
    halt = threading.Event()  # set when the forwarder cannot go on
    with run.forwarding_in_background(poll, on_failure=halt.set):
        try:
            _watch_loop(run, folder, done, failed, poll, settle, once, halt)
        except KeyboardInterrupt:
            say("stopped watching")


def _move_failed(run: AdapterRun, path: Path, failed: Path) -> None:
    shutil.move(path, failed / path.name)
    if run.metrics is not None:
        run.metrics.file_failed()


def _watch_loop(
    run: AdapterRun,
    folder: Path,
    done: Path,
    failed: Path,
    poll: float,
    settle: float,
    once: bool,
    halt: threading.Event | None = None,
) -> None:
    """Each pass takes the settled files in name order. When the outbox cannot be written
    (a full disk, a read-only file) the file stays where it is, the error is printed once,
    and the next passes try it again until it works; a damaged outbox ends the watch."""
    halt = halt or threading.Event()
    blocked: str | None = None  # the outbox error holding the folder back
    while True:
        for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in FILE_SUFFIXES):
            if time.time() - path.stat().st_mtime < settle:
                continue
            try:
                _take_file(run, path, done, failed)
            except OutboxError as exc:
                if exc.fatal:
                    raise
                if blocked != str(exc):
                    say(f"not read yet, kept in {folder}: {exc}", err=True)
                blocked = str(exc)
                break
            if blocked is not None:
                say("the outbox takes events again", err=True)
                blocked = None
        if once or halt.wait(poll):
            return


def _take_file(run: AdapterRun, path: Path, done: Path, failed: Path) -> None:
    """Ingest one settled file and move it to done/ or failed/ (`OutboxError`: left here)."""
    try:
        summary = run.ingest_file(path)
    except FileError as exc:
        say(f"failed: {exc}", err=True)
        _move_failed(run, path, failed)
        return
    report(summary)
    if summary.refused is not None:
        say(f"failed: {summary.refused}", err=True)
        _move_failed(run, path, failed)
    elif summary.accepted:
        shutil.move(path, done / path.name)
    else:
        _move_failed(run, path, failed)
    run.retain()
