"""The Grafana provisioning and dashboards: structure, datasource references, and every
panel has a title and a query (the queries run against Prometheus in test_prometheus)."""

from __future__ import annotations

import re

import yaml

from tests.support.grafana import GRAFANA, dashboards


def test_datasource_and_dashboard_provisioning() -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/hub.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["uid"] == "hub-prometheus"
    assert source["url"].endswith(":9090")
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/hub.yml").read_text())
    assert providers["providers"][0]["type"] == "file"


def test_two_dashboards_every_panel_titled_with_a_query_on_the_hub_datasource() -> None:
    boards = dashboards()
    assert {b["title"] for b in boards.values()} == {"Board: online risk", "Operations"}
    assert len({b["uid"] for b in boards.values()}) == 2
    for board in boards.values():
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)), board["title"]
        for panel in board["panels"]:
            assert panel["title"].strip(), panel
            assert panel["datasource"] == {"type": "prometheus", "uid": "hub-prometheus"}
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["expr"].strip(), panel["title"]
                assert target["datasource"]["uid"] == "hub-prometheus"
            assert set(panel["gridPos"]) == {"x", "y", "w", "h"}


def test_board_shows_suppressed_cells_as_suppressed_not_zero() -> None:
    board = dashboards()["board"]
    titles = {p["title"]: p for p in board["panels"]}
    suppressed = titles["Suppressed cells (last 24 months)"]
    assert "hub_trend_history_suppressed" in suppressed["targets"][0]["expr"]
    for panel in board["panels"]:
        assert panel["fieldConfig"]["defaults"]["noValue"] != "0"
        for step in panel.get("transformations", []):
            if step["id"] == "groupingToMatrix":  # a missing (suppressed) cell stays empty
                assert step["options"]["emptyValue"] == "null", panel["title"]


def test_an_empty_operations_panel_says_what_is_missing_not_suppressed() -> None:
    """Disclosure control applies to the board's published cells only: an empty
    operations panel means no worker, publisher or adapter answered (or nothing yet)."""
    for panel in dashboards()["operations"]["panels"]:
        text = panel["fieldConfig"]["defaults"]["noValue"]
        assert "suppressed" not in text, panel["title"]
        assert re.match(r"no (worker|publisher|adapter) scraped|no rejects$", text), text
    for panel in dashboards()["board"]["panels"]:
        assert panel["fieldConfig"]["defaults"]["noValue"] == "suppressed or not published"


def test_board_draws_month_by_month_history() -> None:
    """The trend panels read the history gauges and lay them out one row per period."""
    board = dashboards()["board"]
    history = [
        panel
        for panel in board["panels"]
        if "hub_trend_history_published" in panel["targets"][0]["expr"]
    ]
    titles = " ".join(panel["title"] for panel in history)
    for subject in ("4Cs cell", "risk codes", "two or more agencies", "Age profile", "Outcomes"):
        assert subject in titles
    assert "Data gap" in titles
    for panel in history:
        assert panel["targets"][0]["format"] == "table", panel["title"]
        steps = {step["id"]: step["options"] for step in panel["transformations"]}
        assert steps["groupingToMatrix"]["rowField"] == "period", panel["title"]
        (order,) = steps["sortBy"]["sort"]
        assert order["field"].startswith("period\\"), panel["title"]
        if panel["type"] == "barchart":
            assert panel["options"]["xField"] == order["field"], panel["title"]


#: The labels of the publisher's trend gauges (streams.publish.exporter.TrendsCollector).
TREND_LABELS = {"publication", "period", "measure", "dimension", "value"}


def test_every_matrix_is_built_from_labels_the_query_returns() -> None:
    """Grouping to matrix on a label the series do not carry leaves the rows ungrouped."""
    for panel in dashboards()["board"]["panels"]:
        expression = panel["targets"][0]["expr"]
        made = set(re.findall(r'label_replace\(.*?\}, "(\w+)"', expression))
        for step in panel.get("transformations", []):
            if step["id"] == "groupingToMatrix":
                fields = {step["options"]["columnField"], step["options"]["rowField"]}
                assert fields <= TREND_LABELS | made, panel["title"]


def test_board_shows_the_data_gap_not_assessed_and_not_recorded_per_agency() -> None:
    """Both parts of the data gap, as shares of each agency's referrals: month by month,
    and the latest month as one stacked bar per agency."""
    gaps = [p for p in dashboards()["board"]["panels"] if p["title"].startswith("Data gap")]
    assert len(gaps) == 2
    for panel in gaps:
        expression = panel["targets"][0]["expr"]
        assert 'measure=~"referrals_online_not_(assessed|recorded)"' in expression
        assert '"gap", "not $1", "measure", "referrals_online_not_(.*)"' in expression
        assert 'measure="referrals",dimension="agency"' in expression
        assert panel["fieldConfig"]["defaults"]["unit"] == "percentunit"
    history, latest = sorted(gaps, key=lambda p: p["type"] == "barchart")
    steps = {step["id"]: step["options"] for step in history["transformations"]}
    assert steps["groupingToMatrix"]["columnField"] == "value"  # a column per agency
    assert '"period", " ", "period", "gap")' in history["targets"][0]["expr"]  # 2 rows a month
    steps = {step["id"]: step["options"] for step in latest["transformations"]}
    assert (steps["groupingToMatrix"]["rowField"], steps["groupingToMatrix"]["columnField"]) == (
        "value",
        "gap",
    )  # a bar per agency, a series per part of the gap
    assert latest["options"]["xField"] == "value\\gap"
    assert latest["options"]["stacking"] == "normal"


def test_board_shows_linkage() -> None:
    """Events by identifier basis as shares of each month's events, and the latest month's
    pseudonyms beside children (linked groups), a suppressed one shown as suppressed."""
    from hub.trends import SUBJECT_BASES

    panels = [p for p in dashboards()["board"]["panels"] if p["title"].startswith("Linkage")]
    assert len(panels) == 2
    share, latest = sorted(panels, key=lambda p: p["type"] != "barchart")
    expression = share["targets"][0]["expr"]
    assert 'measure="events",dimension="subject_basis"' in expression
    assert 'measure="events",dimension="total"} > 0)' in expression  # no month divides by 0
    assert share["fieldConfig"]["defaults"]["unit"] == "percentunit"
    steps = {step["id"]: step["options"] for step in share["transformations"]}
    assert (steps["groupingToMatrix"]["rowField"], steps["groupingToMatrix"]["columnField"]) == (
        "period",
        "value",
    )  # a bar a month, a part per basis
    assert share["options"]["stacking"] == "normal"
    names = {
        o["matcher"]["options"]: o["properties"][0]["value"]
        for o in share["fieldConfig"]["overrides"]
    }
    assert set(names) == set(SUBJECT_BASES)
    assert "within that agency only" in names["LOCAL_ID"]
    assert "within that agency only" in share["description"]

    expression = latest["targets"][0]["expr"]
    cells = 'publication="monthly",measure=~"pseudonyms|children",dimension="total"'
    assert expression.startswith(f"hub_trend_published{{{cells}}} or ")
    assert f"(hub_trend_suppressed{{{cells}}} == 1) * NaN" in expression
    (mapping,) = latest["fieldConfig"]["defaults"]["mappings"]
    assert mapping["options"]["match"] == "null+nan"
    assert mapping["options"]["result"]["text"] == "suppressed"
    assert latest["options"]["reduceOptions"]["calcs"] == ["last"]  # keeps the NaN
