"""Debian's Prometheus, with the shipped configuration, recording and alerting rules,
scraping a real worker, publisher and adapter: every rule and panel returns data, the sums
equal what the worker counted, and every /metrics text passes `promtool check metrics`."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from adapters.profile import load_profile
from hub.agreement.model import load_agreement
from hub.ops.prometheus import Prometheus, recording_rules, render_config
from hub.periods import period_starting
from hub.settings import HubSettings
from hub.subscribe import published_rows
from hub.trends import SUBJECT_BASES
from tests.support.adapter_metrics import label, planted_export, quarantined
from tests.support.agreements import partner_ids
from tests.support.grafana import panel_queries
from tests.support.processes import WorkerProcess, free_port, metrics_text, settings_env
from tests.support.promtool import check_metrics
from tests.support.scenario import Scenario, send


def panel_expression(title: str) -> str:
    (expression,) = [e for _, t, e in panel_queries() if t == title]
    return expression


def wait_for(prometheus: Prometheus, expression: str, timeout: float = 60) -> list[dict]:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = prometheus.query(expression)
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"{expression} returned nothing for {timeout} s")


def history_held(prometheus: Prometheus) -> dict[tuple[str, str, str, str], float]:
    return {
        (s["metric"]["period"], s["metric"]["measure"], s["metric"]["dimension"])
        + (s["metric"]["value"],): float(s["value"][1])
        for s in prometheus.query('hub_trend_history_published{publication="monthly"}')
    }


def linkage_panels_match(
    prometheus: Prometheus,
    published: Mapping[tuple[str, str, str, str], Mapping[str, Any]],
    latest: str,
) -> None:
    """Each month's events by identifier basis as shares of its events (a suppressed
    count has no share), and the latest month's pseudonyms and children, as published."""
    shares = prometheus.query(
        panel_expression("Linkage: share of events by identifier basis, month by month")
    )
    assert {s["metric"]["value"] for s in shares if s["metric"]["period"] == latest} == set(
        SUBJECT_BASES
    )  # every basis published that month, NAME_DOB and LOCAL_ID as 0
    withheld = {key for key, row in published.items() if row["suppressed"]}
    assert any(key[1:3] == ("events", "subject_basis") for key in withheld)
    for series in shares:
        period, basis = series["metric"]["period"], series["metric"]["value"]
        assert (period, "events", "subject_basis", basis) not in withheld, series
        part = published[period, "events", "subject_basis", basis]["count"]
        events = published[period, "events", "total", "all"]["count"]
        assert float(series["value"][1]) == part / events, series
    linked = prometheus.query(
        panel_expression(
            "Linkage (latest month): pseudonyms before linkage and children (linked groups)"
        )
    )
    assert {s["metric"]["measure"] for s in linked} == {"pseudonyms", "children"}
    for series in linked:
        row = published[latest, series["metric"]["measure"], "total", "all"]
        value = float(series["value"][1])
        assert math.isnan(value) if row["suppressed"] else value == row["count"], series


def rejects_panel_matches(prometheus: Prometheus, report: Path) -> None:
    """The adapter's rejects per field, counted as the quarantine report lists them; the
    panel shows their increase over the last day. That extrapolates past the last sample
    by up to a scrape interval (never below the count: the series started at 0), a share
    that shrinks as the samples span longer."""
    expected = dict(Counter(label(r["field"]) for r in quarantined(report)))
    rejects = {
        s["metric"]["field"]: float(s["value"][1])
        for s in wait_for(prometheus, 'hub_adapter_rows_rejected_total{agency="camhs"} > 0')
    }
    assert rejects == expected and rejects
    query = 'hub:adapter_rows_rejected:increase1d{agency="camhs"} > 0'
    deadline = time.monotonic() + 60
    while True:
        increase = {s["metric"]["field"]: float(s["value"][1]) for s in prometheus.query(query)}
        if increase.keys() == expected.keys() and all(
            count <= increase[field] <= count * 1.05 for field, count in expected.items()
        ):
            return
        assert time.monotonic() < deadline, (increase, expected)
        time.sleep(1)


def test_config_points_at_this_hubs_ports(topics: HubSettings) -> None:
    config = render_config(topics, interval="1s")
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    assert targets == {
        "hub-worker": [f"127.0.0.1:{topics.metrics_port}"],
        "hub-publisher": [f"127.0.0.1:{topics.publisher_metrics_port}"],
        "hub-adapters": [f"127.0.0.1:{topics.adapter_metrics_port}"],
    }
    assert all(Path(f).is_file() for f in config["rule_files"])


def test_prometheus_scrapes_the_worker_and_every_rule_records(
    topics: HubSettings, worker: WorkerProcess, tmp_path: Path
) -> None:
    scenario = Scenario.create(partner_ids(topics), children=100, seed=3)
    first = scenario.new_records(600, date(2026, 9, 1), date(2026, 10, 31))
    scenario.withdrawals(30, first)
    send(topics, list(scenario.events), scenario.rnd, replay=0.1)
    live = [r for r in scenario.truth() if r.live]
    worker.start()
    deadline = time.monotonic() + 120
    while worker.metrics().get("hub_events_counted", 0) < len(live):
        assert time.monotonic() < deadline, worker.metrics()
        time.sleep(0.2)
    samples = worker.metrics()
    check_metrics(metrics_text(worker.url))

    prometheus = Prometheus(topics, tmp_path / "prometheus", free_port(), interval="1s")
    prometheus.start()
    try:
        up = wait_for(prometheus, 'up{job="hub-worker"} == 1')
        assert len(up) == 1
        for rule in recording_rules():
            if not rule["record"].startswith("hub:adapter_"):  # no adapter here: see below
                assert wait_for(prometheus, rule["record"]), rule
        counted = prometheus.query("hub:records_counted:sum")
        assert float(counted[0]["value"][1]) == len(live) == samples["hub_events_counted"]
        by_code = {
            r["metric"]["risk_code"]: float(r["value"][1])
            for r in prometheus.query("hub:records_by_risk_code:sum")
        }
        expected = {
            k.split('"')[1]: v
            for k, v in samples.items()
            if k.startswith("hub_events_by_risk_code{")
        }
        assert by_code == expected and sum(by_code.values()) > 0
        submitted = prometheus.query("hub:agency_submitted_for_period:max")
        assert {r["metric"]["agency"] for r in submitted} >= set(partner_ids(topics))
        # The alerting rules are loaded: no publisher runs here, so its target is down.
        down = wait_for(prometheus, 'ALERTS{alertname="HubScrapeTargetDown"}')
        assert {r["metric"]["job"] for r in down} == {"hub-publisher", "hub-adapters"}
    finally:
        prometheus.stop()


def test_every_dashboard_query_returns_data(
    topics: HubSettings, worker: WorkerProcess, tmp_path: Path
) -> None:
    """The hub has published (the publisher releases the periods the timetable has
    closed by today); Prometheus scrapes worker and publisher; every panel's PromQL
    returns series."""
    settings = topics.model_copy(update={"publisher_metrics_port": free_port()})
    agreement = load_agreement(settings.agreement)
    now = datetime.now(UTC)
    month = agreement.closed_period("monthly", agreement.previous_publication("monthly", now))
    quarter = agreement.closed_period(
        "board-quarterly", agreement.previous_publication("board-quarterly", now)
    )
    scenario = Scenario.create(partner_ids(settings), children=400, seed=9)
    scenario.new_records(3000, *month)
    scenario.new_records(3, *month, area="E05000099")  # a small area: suppressed
    scenario.new_records(1500, *quarter)
    # An existing event log: fourteen earlier months, never published before.
    history = [month]
    for _ in range(14):
        history.append(
            period_starting("month", (history[-1][0] - timedelta(days=1)).replace(day=1))
        )
        scenario.new_records(160, *history[-1])
    send(settings, list(scenario.events), scenario.rnd, replay=0.05)
    worker.start()
    # An agency's adapter in watch mode, given an export with bad rows once Prometheus has
    # scraped its counters at 0 (increase() counts from a series' first sample).
    drop, quarantine = tmp_path / "drop", tmp_path / "quarantine"
    drop.mkdir()
    export = tmp_path / "camhs-export.csv"
    planted_export(load_profile("camhs"), export, rows=120)
    adapter = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "adapter", "run", "--profile", "camhs"]
        + ["--watch", str(drop), "--quarantine", str(quarantine)],
        env=settings_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    with (tmp_path / "publisher.log").open("wb") as log:
        publisher = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "streams", "publisher"],
            env=settings_env(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    prometheus = Prometheus(settings, tmp_path / "prometheus", free_port(), interval="1s")
    try:
        prometheus.start()
        wait_for(prometheus, 'hub_adapter_rows_read_total{agency="camhs"}', timeout=60)
        export.rename(drop / export.name)
        wait_for(prometheus, 'up{job="hub-publisher"} == 1', timeout=120)
        wait_for(prometheus, 'hub_trend_revision{publication="monthly"}', timeout=180)
        # Every /metrics endpoint the hub serves, with data in it, as promtool reads it.
        for port in (settings.metrics_port, settings.publisher_metrics_port):
            check_metrics(metrics_text(f"http://127.0.0.1:{port}/metrics"))
        for dashboard, title, expression in panel_queries():
            result = wait_for(prometheus, expression, timeout=60)
            assert result, (dashboard, title)
        # The published counts Prometheus holds are never in 1..7.
        for name in ("hub_trend_published", "hub_trend_history_published"):
            for series in prometheus.query(name):
                value = float(series["value"][1])
                assert value == 0 or value > 7, series

        # The history: every month of the event log, as published on the trends topic.
        published = {
            (row["period_start"][:7], row["measure"], row["dimension"], row["value"]): row
            for row in published_rows(settings)
            if row["publication"] == "monthly"
        }
        assert {key[0] for key in published} == {p[0].isoformat()[:7] for p in history}
        expected = {k: float(r["count"]) for k, r in published.items() if not r["suppressed"]}
        deadline = time.monotonic() + 60  # until a scrape has the last period's every cell
        while (held := history_held(prometheus)) != expected and time.monotonic() < deadline:
            time.sleep(1)
        assert held == expected
        withheld = prometheus.query('hub_trend_history_suppressed{publication="monthly"} == 1')
        assert len(withheld) == sum(1 for r in published.values() if r["suppressed"]) > 0
        codes = prometheus.query(panel_expression("Most common online-risk codes, month by month"))
        assert len({s["metric"]["value"] for s in codes}) == 6
        assert len({s["metric"]["period"] for s in codes}) == len(history)
        # The data gap per agency: not assessed and not recorded, shares of its referrals.
        latest = month[0].isoformat()[:7]
        gap = prometheus.query(
            panel_expression("Data gap per agency (latest month): not assessed and not recorded")
        )
        assert {s["metric"]["gap"] for s in gap} == {"not assessed", "not recorded"}
        for series in gap:
            agency, measure = series["metric"]["value"], series["metric"]["measure"]
            part = published[latest, measure, "agency", agency]["count"]
            referrals = published[latest, "referrals", "agency", agency]["count"]
            assert float(series["value"][1]) == part / referrals, series
        linkage_panels_match(prometheus, published, latest)
        # The operations dashboard's rejects: the quarantine report, per field.
        rejects_panel_matches(prometheus, quarantine / f"{export.name}.rejects.csv")
        check_metrics(metrics_text(f"http://127.0.0.1:{settings.adapter_metrics_port}/metrics"))
    finally:
        prometheus.stop()
        for process in (publisher, adapter):
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)
