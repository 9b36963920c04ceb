"""The adapter's Prometheus metrics: exact counts, bounded labels, nothing from a row in a label.

Unit tests run the real pipeline on a synthetic export with planted bad rows on
an injected registry, and check the counters against the quarantine report.
The end-to-end test scrapes `hub adapter run --watch` over HTTP while a real
broker takes the events.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from adapters.metrics import (
    FORWARDER_STATES,
    REJECT_FIELDS,
    AdapterMetrics,
    ForwarderStatus,
    reject_field,
    serve,
    source_kind,
)
from adapters.outbox import Outbox, OutboxItem, pending_count
from adapters.pipeline import BATCH, Adapter, Forwarder
from adapters.profile import Profile, load_profile
from adapters.publishers.base import KafkaUnavailable
from adapters.runner import adapter_run, file_source, run_files
from adapters.sources.base import SOURCE_KINDS, SourceRecord
from adapters.sources.delimited import CsvSource
from adapters.sources.http_push import RequestSource
from adapters.sources.jsonl import JsonLinesSource
from adapters.sources.sql import SqlSource
from adapters.synth.exports import ExpectedRow
from adapters.versions import CHANGES
from hub.errors import HubError, RecordError
from hub.minimise import Minimiser
from hub.pseudonymise import KeyRing, Pseudonymiser
from hub.settings import HubSettings
from tests.support.adapter_metrics import label, planted_export, quarantined
from tests.support.agreements import example_areas
from tests.support.outbox import event_ids_on, outbox_counts, wait_for
from tests.support.processes import free_port, hub, metrics_text, scrape, settings_env
from tests.support.promtool import check_metrics

SUFFIX = {"csv": ".csv", "tsv": ".tsv", "jsonl": ".jsonl"}


# --- helpers ------------------------------------------------------------------------
def samples(registry: CollectorRegistry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample of `name`, keyed by its sorted labels."""
    found = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def label_values(registry: CollectorRegistry) -> set[str]:
    return {v for family in registry.collect() for s in family.samples for v in s.labels.values()}


def identifying(expected: Sequence[ExpectedRow]) -> set[str]:
    """What in the export identifies a child or a record, and the planted rows' own text."""
    found = {"Jane Brokenrow", "Jane Nestedkey", "Jane Notjson", "9990000000"}
    for row in expected:
        child = row.child
        found |= {row.record_id, child.nhs_number, child.family_name, child.given_name}
        found |= {child.postcode, child.postcode.split()[0], child.born.isoformat()}
    return found


def assert_no_row_content_in_labels(
    values: set[str], content: set[str], reasons: Sequence[str], agency: str
) -> None:
    """Label values are from the bounded sets, and none holds an identifier or a reason."""
    allowed = {agency, *SOURCE_KINDS, *REJECT_FIELDS, *CHANGES, *FORWARDER_STATES}
    assert values <= allowed, values - allowed
    for value in values:
        assert not any(ch.isdigit() for ch in value), value  # no NHS number, id or date
        for text in content:
            assert text.casefold() not in value.casefold(), (value, text)
        for reason in reasons:
            assert reason not in value and value != reason, (value, reason)


@pytest.fixture
def pseudonymiser() -> Pseudonymiser:
    return Pseudonymiser(KeyRing.generate("t"))


def pipeline(
    profile: Profile,
    pseudonymiser: Pseudonymiser,
    outbox: Outbox,
    quarantine: Path,
    registry: CollectorRegistry,
) -> Adapter:
    metrics = AdapterMetrics(registry, profile.agency)
    metrics.watch_outbox(lambda: pending_count(outbox.path))
    return Adapter(
        profile,
        f"cases.{profile.agency}",
        pseudonymiser,
        outbox,
        quarantine,
        Minimiser(),
        agency=profile.agency,
        metrics=metrics,
        areas=example_areas(),
    )


# --- unit: the pipeline on an injected registry ---------------------------------------
@pytest.mark.parametrize("name", ["camhs", "spa", "counselling"])  # csv, tsv, jsonl
def test_rejects_per_field_match_the_quarantine_report(
    name: str, tmp_path: Path, pseudonymiser: Pseudonymiser
) -> None:
    profile = load_profile(name)
    path = tmp_path / f"{name}-export{SUFFIX[profile.format]}"
    expected = planted_export(profile, path)
    registry = CollectorRegistry()
    outbox = Outbox(tmp_path / "outbox.sqlite")
    adapter = pipeline(profile, pseudonymiser, outbox, tmp_path / "q", registry)
    try:
        summary = adapter.ingest(file_source(path, profile))
    finally:
        outbox.close()

    report = quarantined(tmp_path / "q" / f"{path.name}.rejects.csv")
    planted = 2
    assert len(report) == sum(1 for e in expected if e.rejected) + planted
    rejected = samples(registry, "hub_adapter_rows_rejected_total")
    by_field = {dict(k)["field"]: v for k, v in rejected.items() if v}
    assert by_field == dict(Counter(label(r["field"]) for r in report))
    assert by_field.get("record", 0) >= 1  # a planted row rejected whole
    if profile.format == "jsonl":
        assert by_field["other"] == 1  # the planted row's own key is not a label

    read = samples(registry, "hub_adapter_rows_read_total")
    kind = "tsv" if profile.format == "tsv" else profile.format
    assert read[(("agency", name), ("source_kind", kind))] == len(expected) + planted
    assert sum(read.values()) == len(expected) + planted  # no other kind counted
    accepted = samples(registry, "hub_adapter_rows_accepted_total")[(("agency", name),)]
    assert accepted == summary.accepted == sum(1 for e in expected if not e.rejected)
    assert accepted + sum(rejected.values()) == sum(read.values())

    stored = samples(registry, "hub_adapter_events_stored_total")[(("agency", name),)]
    changed = summary.new + summary.changes["corrected"] + summary.changes["withdrawn"]
    assert stored == summary.stored == changed
    if profile.record_identity == ("record_id",):  # one record per record id
        assert stored == len({e.record_id for e in expected if not e.rejected})
    records = samples(registry, "hub_adapter_records_total")
    assert {dict(k)["change"]: v for k, v in records.items()} == {
        c: summary.changes[c] for c in ("new", "corrected", "withdrawn", "unchanged")
    }
    assert samples(registry, "hub_adapter_outbox_pending") == {(("agency", name),): stored}
    last = samples(registry, "hub_adapter_last_ingest_timestamp_seconds")[(("agency", name),)]
    assert abs(last - time.time()) < 60

    assert_no_row_content_in_labels(
        label_values(registry),
        identifying(expected),
        [r["reason"] for r in report],
        name,
    )


class _Records:
    """A source of generic-profile records that looks at the counters while it is read."""

    name = "long-source"

    def __init__(self, registry: CollectorRegistry, rows: int) -> None:
        self.registry = registry
        self.rows = rows
        self.seen_mid_way: float | None = None

    def records(self) -> Iterator[SourceRecord | RecordError]:
        for row in range(1, self.rows + 1):
            if row == 2 * BATCH + 2:
                read = samples(self.registry, "hub_adapter_rows_read_total")
                self.seen_mid_way = sum(read.values())
            if row % 10 == 0:
                yield RecordError(self.name, row, "*", "planted")
                continue
            values = {"record_id": f"R-{row}", "occurred_on": "2026-10-01"}
            yield SourceRecord(self.name, row, values)


def test_counts_show_progress_while_a_long_source_is_read(
    tmp_path: Path, pseudonymiser: Pseudonymiser
) -> None:
    registry = CollectorRegistry()
    outbox = Outbox(tmp_path / "outbox.sqlite")
    adapter = pipeline(load_profile("generic"), pseudonymiser, outbox, tmp_path / "q", registry)
    source = _Records(registry, 3 * BATCH)
    try:
        adapter.ingest(source)
    finally:
        outbox.close()
    assert source.seen_mid_way == 2 * BATCH  # counted in steps, before the source ended
    read = samples(registry, "hub_adapter_rows_read_total")
    assert read[(("agency", "generic"), ("source_kind", "other"))] == 3 * BATCH
    rejected = samples(registry, "hub_adapter_rows_rejected_total")
    assert rejected[(("agency", "generic"), ("field", "record"))] == 3 * BATCH // 10


def test_source_kinds_are_the_kind_of_source_never_its_name(tmp_path: Path) -> None:
    tsv = load_profile("spa")
    assert source_kind(CsvSource(tmp_path / "Jane Smith.csv", load_profile("camhs"))) == "csv"
    assert source_kind(CsvSource(tmp_path / "Jane Smith.tsv", tsv)) == "tsv"
    jsonl = load_profile("counselling")
    assert source_kind(JsonLinesSource(tmp_path / "x.jsonl", jsonl)) == "jsonl"
    sql = SqlSource("postgresql+psycopg://u:pw@db/cases", "SELECT * FROM v", "updated_at", None)
    assert source_kind(sql) == "sql"
    assert source_kind(RequestSource("http-camhs-1", [])) == "http"
    assert source_kind(_Records(CollectorRegistry(), 0)) == "other"  # declares no kind
    assert source_kind(SimpleNamespace(name="x", kind="Jane Smith.csv")) == "other"


def test_reject_field_labels_are_bounded() -> None:
    def error(field: str) -> RecordError:
        return RecordError("s", 1, field, "Jane Smith 9990000000")

    assert reject_field(error("nhs_number")) == "nhs_number"
    assert reject_field(error("*")) == "record"
    assert reject_field(error("Jane Smith 9990000000")) == "other"
    assert reject_field(error("updated_at")) == "other"  # an SQL watermark column


class _FlakyPublisher:
    """Kafka down for the first send, then acknowledging all but one event of the next."""

    def __init__(self) -> None:
        self.calls = 0

    def send(self, items: Sequence[OutboxItem]) -> list[str]:
        self.calls += 1
        if self.calls == 1:
            raise KafkaUnavailable("planted outage")
        ids = [i.event_id for i in items]
        return ids[1:] if self.calls == 2 else ids

    def close(self) -> None:
        pass


def test_forwarder_counts_sent_events_and_failed_sends(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    metrics = AdapterMetrics(registry, "camhs")
    outbox = Outbox(tmp_path / "outbox.sqlite")
    try:
        outbox.put(OutboxItem(f"e{i}", "t", b"k", b"v") for i in range(7))
        sent = Forwarder(outbox, _FlakyPublisher(), metrics).drain(timeout=30, retry_every=0)
        assert sent == 7 and outbox.counts() == (0, 7)
    finally:
        outbox.close()
    agency = (("agency", "camhs"),)
    assert samples(registry, "hub_adapter_events_sent_total")[agency] == 7
    assert samples(registry, "hub_adapter_send_failures_total")[agency] == 2  # outage, partial


def test_a_taken_port_names_the_setting_to_change() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(HubError, match="HUB_ADAPTER_METRICS_PORT"):
            with serve(CollectorRegistry(), "127.0.0.1", port):
                pass


def test_serve_answers_scrapes_and_stops() -> None:
    """Every family the adapter serves (counters, outbox, forwarder), as promtool accepts."""
    registry = CollectorRegistry()
    metrics = AdapterMetrics(registry, "camhs")
    metrics.sent(3)
    metrics.watch_outbox(lambda: (2, time.time() - 60))
    status = ForwarderStatus()
    status.set("waiting_for_kafka", "no broker")
    metrics.watch_forwarder(status, stale_after=30)
    with serve(registry, "127.0.0.1", 0) as url:
        scraped = scrape(url)
        assert scraped['hub_adapter_events_sent_total{agency="camhs"}'] == 3
        assert scraped['hub_adapter_outbox_pending{agency="camhs"}'] == 2
        assert scraped['hub_adapter_forwarder_stalled{agency="camhs"}'] == 1
        check_metrics(metrics_text(url))
    with pytest.raises(OSError):
        scrape(url)


# --- with the broker ------------------------------------------------------------------
def test_watch_mode_with_a_taken_port_exits_with_advice(
    hub_settings: HubSettings, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = hub_settings.model_copy(update={"adapter_metrics_port": taken.getsockname()[1]})
        result = hub(settings, "adapter", "run", "--profile", "camhs", "--watch", str(tmp_path))
    assert result.returncode == 1, result.stdout
    assert "HUB_ADAPTER_METRICS_PORT" in result.stderr


def test_one_shot_run_counts_what_its_helper_process_sent(
    topics: HubSettings, tmp_path: Path
) -> None:
    profile = load_profile("camhs")
    path = tmp_path / "camhs-export.csv"
    expected = planted_export(profile, path, rows=120)
    registry = CollectorRegistry()
    metrics = AdapterMetrics(registry, "camhs")
    with adapter_run(topics, "camhs", "camhs", quarantine=tmp_path / "q", metrics=metrics) as run:
        run_files(run, [path], drain_timeout=60)
    distinct = len({e.record_id for e in expected if not e.rejected})
    assert outbox_counts(topics.outbox) == (0, distinct)
    agency = (("agency", "camhs"),)
    assert samples(registry, "hub_adapter_events_sent_total")[agency] == distinct
    assert samples(registry, "hub_adapter_events_stored_total")[agency] == distinct


def metric(scraped: Mapping[str, float], name: str) -> dict[str, float]:
    """{labels: value} of one metric in a scrape."""
    return {k[len(name) :]: v for k, v in scraped.items() if k.split("{")[0] == name}


def test_watch_mode_serves_rejects_and_sends_on_its_metrics_port(
    topics: HubSettings, tmp_path: Path
) -> None:
    settings = topics.model_copy(update={"adapter_metrics_port": free_port()})
    url = f"http://127.0.0.1:{settings.adapter_metrics_port}/metrics"
    drop, quarantine = tmp_path / "drop", tmp_path / "q"
    drop.mkdir()
    profile = load_profile("camhs")
    path = tmp_path / "camhs-export.csv"
    expected = planted_export(profile, path, rows=200)
    rows = len(expected) + 2
    watcher = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "adapter", "run", "--profile", "camhs"]
        + ["--watch", str(drop), "--quarantine", str(quarantine)],
        env=settings_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def scraped() -> dict[str, float]:
        try:
            return scrape(url)
        except OSError:
            assert watcher.poll() is None, "the adapter exited"
            return {}

    try:
        wait_for(lambda: "hub_adapter_outbox_pending" in str(scraped()), 60, "metrics")
        before = scraped()
        assert sum(metric(before, "hub_adapter_rows_read_total").values()) == 0
        path.rename(drop / path.name)
        wait_for(
            lambda: (
                scraped().get('hub_adapter_rows_read_total{agency="camhs",source_kind="csv"}')
                == rows
            ),
            60,
            "the file's rows to be counted",
        )
        distinct = len({e.record_id for e in expected if not e.rejected})
        wait_for(
            lambda: scraped().get('hub_adapter_events_sent_total{agency="camhs"}') == distinct,
            60,
            "the events to be sent",
        )
        after = scraped()
        assert after['hub_adapter_files_failed_total{agency="camhs"}'] == 0
        # Files the folder cannot use: one empty, one with a header and no usable row.
        (tmp_path / "empty.csv").write_bytes(b"")
        (tmp_path / "unusable.csv").write_text("Jane Brokenrow,9990000000\r\n")
        for name in ("empty.csv", "unusable.csv"):
            (tmp_path / name).rename(drop / name)
        wait_for(
            lambda: scraped().get('hub_adapter_files_failed_total{agency="camhs"}') == 2,
            60,
            "the unusable files to be counted",
        )
    finally:
        os.killpg(watcher.pid, signal.SIGINT)
        output = watcher.communicate(timeout=60)[0].decode()
    assert f"adapter metrics on {url}" in output
    assert sorted(p.name for p in (drop / "failed").iterdir()) == ["empty.csv", "unusable.csv"]

    report = quarantined(quarantine / f"{path.name}.rejects.csv")
    rejected = metric(after, "hub_adapter_rows_rejected_total")
    by_field = {k.split('field="')[1].split('"')[0]: v for k, v in rejected.items() if v}
    assert by_field == dict(Counter(label(r["field"]) for r in report))
    accepted = after['hub_adapter_rows_accepted_total{agency="camhs"}']
    assert accepted == sum(1 for e in expected if not e.rejected)
    assert accepted + sum(rejected.values()) == rows
    assert after['hub_adapter_events_stored_total{agency="camhs"}'] == distinct
    assert after['hub_adapter_outbox_pending{agency="camhs"}'] == 0
    assert after['hub_adapter_send_failures_total{agency="camhs"}'] == 0
    assert after['hub_adapter_last_ingest_timestamp_seconds{agency="camhs"}'] > 0
    assert outbox_counts(settings.outbox) == (0, distinct)
    assert len(set(event_ids_on(settings, settings.case_topic("camhs")))) == distinct

    values = {value for key in after for value in re.findall(r'="([^"]*)"', key)}
    assert_no_row_content_in_labels(
        values,
        identifying(expected),
        [r["reason"] for r in report],
        "camhs",
    )
