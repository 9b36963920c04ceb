"""The shipped Prometheus configuration and rule files through Debian's promtool, and
what every query of the rules and dashboards may use: metrics the hub defines, counters
only through rate() or increase()."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.support.grafana import panel_queries
from tests.support.promtool import ALERT_TESTS, PROMETHEUS, promtool

REPO = PROMETHEUS.parents[1]
#: Labels an alert's text may show: bounded names, never a pseudonym or a case id.
ALERT_LABELS = {"job", "instance", "agency", "publication"}


def rule_files() -> list[Path]:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    return [PROMETHEUS / name for name in config["rule_files"]]


def rules(kind: str) -> list[dict[str, Any]]:
    """Every rule of `kind` ("record" or "alert") in the rule files Prometheus loads."""
    found = []
    for path in rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            found += [rule for rule in group["rules"] if kind in rule]
    return found


def expressions() -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every rule and every dashboard panel."""
    for rule in rules("record") + rules("alert"):
        yield rule.get("record") or rule["alert"], rule["expr"]
    for dashboard, title, expression in panel_queries():
        yield f"{dashboard}: {title}", expression


def defined_metrics() -> set[str]:
    """Metric names the hub's code defines: every hub_* string constant in its packages."""
    names: set[str] = set()
    for package in ("hub", "streams", "adapters"):
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    if re.fullmatch(r"hub_[a-z0-9_]+", node.value):
                        names.add(node.value)
    return names


def test_the_configuration_and_every_rule_file_pass_promtool() -> None:
    files = rule_files()
    assert {p.name for p in files} == {"rules.yml", "alerts.yml"}
    for path in files:
        result = promtool("check", "rules", str(path))
        assert result.returncode == 0, result.stdout + result.stderr
    result = promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_pass_their_unit_tests() -> None:
    result = promtool("test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_tested_firing_and_quiet() -> None:
    tests = yaml.safe_load(ALERT_TESTS.read_text())
    cases = [case for test in tests["tests"] for case in test["alert_rule_test"]]
    for alert in rules("alert"):
        mine = [case for case in cases if case["alertname"] == alert["alert"]]
        assert any(case["exp_alerts"] for case in mine), f"{alert['alert']} never fires"
        assert any(not case["exp_alerts"] for case in mine), f"{alert['alert']} never quiet"


def test_every_alert_waits_has_a_severity_and_says_what_happened() -> None:
    alerts = rules("alert")
    assert {a["alert"] for a in alerts} == {
        "HubScrapeTargetDown",
        "HubAgencySubmissionLate",
        "HubAdapterOutboxGrowing",
        "HubAdapterForwarderStalled",
        "HubUndecodableMessages",
        "HubPublicationFailed",
    }
    for alert in alerts:
        name = alert["alert"]
        assert re.fullmatch(r"\d+[mh]", alert["for"]), name
        assert alert["labels"]["severity"] in {"critical", "warning"}, name
        assert set(alert["annotations"]) == {"summary", "description"}, name
        assert "{{" not in alert["annotations"]["summary"], name
        shown = set(re.findall(r"\$labels\.(\w+)", alert["annotations"]["description"]))
        assert shown <= ALERT_LABELS, (name, shown - ALERT_LABELS)


def test_every_query_reads_metrics_the_hub_defines() -> None:
    """A counter is defined without its _total suffix; `up` is Prometheus' own."""
    defined = defined_metrics()
    recorded = {rule["record"] for rule in rules("record")}
    for where, expression in expressions():
        for name in set(re.findall(r"\b(hub_[a-z0-9_]+)", expression)):
            assert name in defined or name.removesuffix("_total") in defined, (where, name)
        for name in set(re.findall(r"\b(hub:[a-z0-9_:]+)", expression)):
            assert name in recorded, (where, name)


def test_counters_are_read_through_rate_or_increase() -> None:
    """A counter restarts at 0 with its process: summed raw, it drops at every restart."""
    for where, expression in expressions():
        for match in re.finditer(r"\bhub_[a-z0-9_]+_total\b", expression):
            before = expression[: match.start()].rstrip()
            assert re.search(r"\b(rate|increase)\($", before), (where, match.group())
