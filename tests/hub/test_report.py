"""The board pack: trend markers, comparisons, suppression, self-containment, rendering.

Pure tests build trend rows by hand (the shape ``hub.subscribe.published_rows``
returns); the rendering test draws a pack in headless Chromium and looks for
every chart's data colour in the screenshot, with an all-suppressed pack as
the control. Without /usr/bin/chromium that test fails; it never skips.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from hub.agreement.model import Agreement, LocalRiskCode, ReportPolicy, load_agreement
from hub.periods import add_months, period_starting
from hub.report import build_pack
from hub.report.charts import COLOURS
from hub.report.context import agencies, breakdown, linkage, revisions
from hub.report.headlines import headlines
from hub.report.pack import NotPublishedError, Pack
from hub.report.stats import (
    CHI2_CRITICAL,
    Judgement,
    Marker,
    Polarity,
    count_trend,
    proportion_trend,
)
from hub.taxonomy import CELLS

REPO = Path(__file__).resolve().parents[2]
GENERATED = datetime(2026, 10, 16, 8, 0, tzinfo=UTC)
Value = Callable[[int, int], int | None]  # (period index, base) -> count or None (suppressed)


@pytest.fixture(scope="module")
def agreement() -> Agreement:
    return load_agreement(REPO / "deploy" / "agreement" / "example.yaml")


RECORDING = 3  # partners (in agreement order) that record the online component


def breakdowns(agreement: Agreement) -> list[tuple[str, str, str, int]]:
    """(measure, dimension, value, base count) of every cell the pack reads."""
    cells = [
        ("events", "total", "all", 100),
        ("children", "total", "all", 80),
        ("children", "known_to_agencies", "1", 60),
        ("children", "known_to_agencies", "2+", 20),
        ("pseudonyms", "total", "all", 90),
    ]
    bases = {"NHS_NUMBER": 60, "NAME_DOB": 20, "LOCAL_ID": 15, "NONE": 5}
    cells += [("events", "subject_basis", basis, n) for basis, n in bases.items()]
    cells += [("events", "cell_4c", name, 10 + 5 * j) for j, name in enumerate(CELLS)]
    codes = ("GROOMING", "SEXTORTION", "CYBERBULLYING", "CSAM")
    cells += [("events", "risk_code", code, 20 + 10 * j) for j, code in enumerate(codes)]
    bands = ("11-13", "14-15", "16-17")
    cells += [("children", "age_band", band, 20 + 5 * j) for j, band in enumerate(bands)]
    for j, partner in enumerate(agreement.partners):
        referrals = 40 + 5 * j
        # The first three partners record the online component; the other six have no
        # such field, so all their referrals are "not recorded" (a base of 0 is always 0).
        recorded = j < RECORDING
        cells.append(("referrals", "agency", partner.id, referrals))
        cells.append(("referrals_online_not_assessed", "agency", partner.id, 20 if recorded else 0))
        cells.append(
            ("referrals_online_not_recorded", "agency", partner.id, 0 if recorded else referrals)
        )
    return cells


def trend_rows(
    agreement: Agreement, publication: str, kind: str, first: date, periods: int, value: Value
) -> list[dict[str, Any]]:
    """Every breakdown the pack reads, for `periods` periods from `first`."""
    rows: list[dict[str, Any]] = []
    step = 3 if kind == "quarter" else 1
    for i in range(periods):
        start, end = period_starting(kind, add_months(first, step * i))
        for measure, dimension, name, base in breakdowns(agreement):
            count = value(i, base) if base else 0
            rows.append(
                {
                    "publication": publication,
                    "period_start": start.isoformat(),
                    "period_end": end.isoformat(),
                    "measure": measure,
                    "dimension": dimension,
                    "value": name,
                    "count": count,
                    "suppressed": count is None,
                    "revision": 1 if i == periods - 4 else 0,  # one period re-released
                    "published_at": "2026-10-15T08:00:00+00:00",
                }
            )
    return rows


def rising(i: int, base: int) -> int:
    return base + 5 * i


def both_publications(agreement: Agreement, value: Value) -> list[dict[str, Any]]:
    """24 months (2024-10 to 2026-09) monthly and 8 quarters (2024Q4 to 2026Q3) quarterly."""
    first = date(2024, 10, 1)
    return [
        *trend_rows(agreement, "monthly", "month", first, 24, value),
        *trend_rows(agreement, "board-quarterly", "quarter", first, 8, value),
    ]


def set_count(
    rows: list[dict[str, Any]], start: str, measure: str, value: str, n: int | None
) -> None:
    for row in rows:
        if (row["period_start"], row["measure"], row["value"]) == (start, measure, value):
            row["count"], row["suppressed"] = n, n is None


# -- the trend test (Fingertips' recent trend) --


def test_the_critical_value_is_fingertips_chi_squared_at_99_8_percent() -> None:
    assert CHI2_CRITICAL == pytest.approx(9.54953570608324, abs=1e-9)


def test_a_clear_increase_is_increasing_and_coloured_by_polarity() -> None:
    trend = count_trend([100, 150, 200, 250, 300], round_to=5)
    assert trend.marker is Marker.INCREASING
    assert trend.judgement(Polarity.LOWER_IS_BETTER) is Judgement.WORSE
    assert trend.judgement(Polarity.HIGHER_IS_BETTER) is Judgement.BETTER
    assert trend.judgement(Polarity.NO_JUDGEMENT) is Judgement.NO_JUDGEMENT


def test_a_clear_decrease_is_decreasing() -> None:
    trend = count_trend([300, 250, 200, 150, 100], round_to=5)
    assert trend.marker is Marker.DECREASING
    assert trend.judgement(Polarity.LOWER_IS_BETTER) is Judgement.BETTER


def test_flat_and_noisy_series_show_no_significant_change() -> None:
    assert count_trend([120, 120, 120, 120, 120]).marker is Marker.NO_CHANGE
    # A rise of 5 a period on counts near 120 is within Poisson noise.
    assert count_trend([100, 105, 110, 115, 120], round_to=5).marker is Marker.NO_CHANGE


def test_one_outlier_does_not_make_a_trend() -> None:
    # Significant on all five points, but flat once the last is left out.
    trend = count_trend([100, 100, 100, 100, 400])
    assert trend.statistic is not None and trend.statistic > CHI2_CRITICAL
    assert trend.marker is Marker.NO_CHANGE


def test_fewer_than_five_points_cannot_be_calculated() -> None:
    trend = count_trend([100, 200, 300, 400])
    assert trend.marker is Marker.CANNOT
    assert trend.judgement(Polarity.LOWER_IS_BETTER) is Judgement.CANNOT
    assert "fewer than 5" in trend.describe(Polarity.NO_JUDGEMENT)


def test_a_suppressed_point_in_the_last_five_cannot_be_calculated() -> None:
    assert count_trend([100, 150, None, 250, 300]).marker is Marker.CANNOT
    # Only the last five count: an older suppressed point does not matter.
    assert count_trend([None, 100, 150, 200, 250, 300]).marker is Marker.INCREASING


def test_proportions_use_the_chi_squared_test_for_trend() -> None:
    rising_share = proportion_trend([10, 20, 30, 40, 50], [100] * 5)
    assert rising_share.marker is Marker.INCREASING
    # sum(r t) - R sum(n t) / N = 100; variance 0.3 * 0.7 * (5500 - 1500 ** 2 / 500) = 210.
    assert rising_share.statistic == pytest.approx(100**2 / 210)
    assert proportion_trend([50, 40, 30, 20, 10], [100] * 5).marker is Marker.DECREASING
    assert proportion_trend([30, 31, 29, 30, 30], [100] * 5).marker is Marker.NO_CHANGE
    assert proportion_trend([10, 20, None, 40, 50], [100] * 5).marker is Marker.CANNOT
    assert proportion_trend([0] * 5, [100] * 5).marker is Marker.NO_CHANGE


# -- the pack's numbers --


def test_the_agreement_decides_polarity(agreement: Agreement) -> None:
    """A steep rise in events: blue (no judgement) by default, red where the partnership
    has agreed that fewer events is better; the other headlines keep their defaults."""
    rows = both_publications(agreement, lambda i, base: base * (i + 1))
    default = {h.title: h.judgement for h in headlines(Pack(rows, agreement, "2026-09"))}
    assert default["Events with an online component"] is Judgement.NO_JUDGEMENT
    chosen = agreement.model_copy(
        update={"report": ReportPolicy(polarity={"events": "lower is better"})}
    )
    judged = {h.title: h.judgement for h in headlines(Pack(rows, chosen, "2026-09"))}
    assert judged["Events with an online component"] is Judgement.WORSE
    assert judged["Children"] is Judgement.NO_JUDGEMENT
    assert {t: j for t, j in judged.items() if not t.startswith("Events")} == {
        t: j for t, j in default.items() if not t.startswith("Events")
    }
    with pytest.raises(ValueError, match="polarity"):
        ReportPolicy.model_validate({"polarity": {"events": "fewer is nicer"}})


def test_headlines_compare_with_the_previous_period_and_last_year(agreement: Agreement) -> None:
    rows = both_publications(agreement, rising)
    set_count(rows, "2026-08-01", "events", "all", 120)
    set_count(rows, "2026-09-01", "events", "all", 135)
    set_count(rows, "2025-09-01", "events", "all", 100)
    counts = {"referrals_online_not_assessed": 10, "referrals_online_not_recorded": 0}
    for row in rows:  # the data gap: every agency 50 referrals, 10 not assessed ...
        if row["publication"] == "monthly" and row["measure"].startswith("referrals"):
            row["count"] = counts.get(row["measure"], 50)
    set_count(rows, "2026-09-01", "referrals_online_not_assessed", "police", 25)  # ... but one
    set_count(rows, "2026-09-01", "referrals", "spa", None)  # and one left out: suppressed

    events, children, multi, gap = headlines(Pack(rows, agreement, "2026-09"))

    assert (events.value, events.previous, events.previous_change) == ("135", "120", "up 15 (+12%)")
    assert (events.last_year, events.last_year_change) == ("100", "up 35 (+35%)")
    assert (children.value, children.previous) == ("195", "190")
    assert children.previous_change == "up 5 (+3%)"
    assert multi.value == "135" and multi.last_year_change == "up 60 (+80%)"
    # 8 agencies published: (7 * 10 + 25) / (8 * 50) = 23.75%; before 10 / 50 = 20%.
    assert (gap.value, gap.previous, gap.previous_change) == (
        "23.8%",
        "20.0%",
        "up 3.8 percentage points",
    )
    assert gap.note == "1 agencies left out this period: a suppressed cell"


def test_suppressed_cells_show_as_c_never_zero(agreement: Agreement) -> None:
    rows = both_publications(agreement, rising)
    set_count(rows, "2026-09-01", "events", "all", None)
    set_count(rows, "2026-09-01", "events", "GROOMING", None)
    pack = Pack(rows, agreement, "2026-09")

    events = headlines(pack)[0]
    assert (events.value, events.previous_change) == ("[c]", "cannot be compared (suppressed)")
    assert events.trend.startswith("cannot be calculated")
    codes = breakdown(pack, "events", "risk_code", ["GROOMING"], str)
    assert codes[0].current == "[c]" and codes[0].previous != "[c]"
    page = build_pack(rows, agreement, "2026-09", GENERATED)
    assert "[c]" in page
    assert "suppressed (1-7 or to protect another cell)" in page
    headline = re.search(r'<div class="value">([^<]*)</div>', page)
    assert headline is not None and headline.group(1) == "[c]"


def test_the_pack_is_self_contained(agreement: Agreement) -> None:
    page = build_pack(both_publications(agreement, rising), agreement, "2026Q3", GENERATED)
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and " src=" not in page and "@import" not in page
    assert set(re.findall(r"url\((.)", page)) <= {"#"}  # only the SVGs' own clip paths
    assert page.count("<svg ") == 8  # seven charts and the monthly detail


def test_the_methods_cite_the_releases_audit_entry(agreement: Agreement) -> None:
    rows = both_publications(agreement, rising)
    page = build_pack(rows, agreement, "2026Q3", GENERATED)
    assert "entry <code>release/board-quarterly/2026-07-01/r0</code> of the" in page
    page = build_pack(rows, agreement, "2026-09", GENERATED)
    assert "entry <code>release/monthly/2026-09-01/r0</code> of the" in page


def test_labels_are_escaped(agreement: Agreement) -> None:
    local = LocalRiskCode(code="CSAM_LOCAL", cell="CONTACT_SEXUAL", label="<b>bad</b> & 'x'")
    agreement = agreement.model_copy(update={"local_risk_codes": (local,)})
    rows = both_publications(agreement, rising)
    for row in rows:
        if row["value"] == "CSAM":
            row["value"] = "CSAM_LOCAL"
    page = build_pack(rows, agreement, "2026Q3", GENERATED)
    assert "<b>bad</b>" not in page
    assert "&lt;b&gt;bad&lt;/b&gt; &amp; &#39;x&#39;" in page


def test_an_unpublished_period_is_refused(agreement: Agreement) -> None:
    rows = both_publications(agreement, rising)
    with pytest.raises(NotPublishedError, match=r"hub publish --now --period 2026Q4"):
        build_pack(rows, agreement, "2026Q4", GENERATED)
    with pytest.raises(NotPublishedError, match="latest released period starts 2026-09-01"):
        build_pack(rows, agreement, "2026-10", GENERATED)


def test_the_data_quality_notes_tell_nothing_received_from_suppressed(agreement: Agreement) -> None:
    rows = both_publications(agreement, rising)
    set_count(rows, "2026-07-01", "referrals", "police", 0)
    set_count(rows, "2026-07-01", "referrals_online_not_assessed", "police", 0)
    set_count(rows, "2026-07-01", "referrals", "spa", None)
    notes = {a.agency: a for a in agencies(Pack(rows, agreement, "2026Q3"))}
    assert notes["police"].referrals == "0" and notes["police"].note.startswith("nothing received")
    assert notes["spa"].referrals == "[c]" and "suppressed" in notes["spa"].note
    assert notes["camhs"].note == ""
    assert [r[:2] for r in revisions(Pack(rows, agreement, "2026Q3"))] == [("2025Q4", 1)]


def test_the_data_gap_names_the_agencies_that_do_not_record_it(agreement: Agreement) -> None:
    """Six partners' systems have no online-component field: their referrals are counted
    as not recorded, apart from the share not assessed, and the pack says who they are."""
    rows = both_publications(agreement, rising)
    set_count(rows, "2026-07-01", "referrals_online_not_recorded", "voluntary", None)
    pack = Pack(rows, agreement, "2026Q3")

    gap = headlines(pack)[3]
    # 2026Q3 is the 8th quarter: referrals 75 + 5j; camhs, spa and police 55 not assessed.
    assert gap.value == "19.3%"  # 165 / 855, every agency published
    assert gap.note == (
        "The online component is not recorded by the systems of counselling, education,"
        " relationships, school-nursing, youth-service: 67.6% of referrals, counted apart"
        " from those not assessed. Referrals not recorded: the count is suppressed for"
        " voluntary."
    )  # 500 / 740: voluntary left out of that share
    rows_by_agency = {a.agency: a for a in agencies(pack)}
    nursing = rows_by_agency["school-nursing"]
    assert (nursing.referrals, nursing.not_assessed, nursing.share) == ("90", "0", "0.0%")
    assert (nursing.not_recorded, nursing.share_not_recorded) == ("90", "100.0%")
    assert nursing.note == "the agency's system does not record the online component"
    camhs = rows_by_agency["camhs"]
    assert (camhs.not_assessed, camhs.share, camhs.not_recorded) == ("55", "73.3%", "0")
    assert camhs.note == ""
    voluntary = rows_by_agency["voluntary"]
    assert (voluntary.not_recorded, voluntary.share_not_recorded) == ("[c]", "[c]")
    assert voluntary.note == "count not recorded is suppressed, so its share cannot be shown"

    page = " ".join(build_pack(rows, agreement, "2026Q3", GENERATED).split())
    assert "Online component not recorded" in page
    assert "released before referrals whose agency does not record" not in page


def test_a_period_released_before_not_recorded_was_counted_says_so(agreement: Agreement) -> None:
    """Before the split, a referral whose agency has no such field was "not assessed"."""
    rows = both_publications(agreement, rising)
    unrecorded = {
        (r["publication"], r["period_start"], r["value"]): r["count"]
        for r in rows
        if r["measure"] == "referrals_online_not_recorded"
    }
    rows = [r for r in rows if r["measure"] != "referrals_online_not_recorded"]
    for row in rows:
        if row["measure"] == "referrals_online_not_assessed":
            row["count"] += unrecorded[row["publication"], row["period_start"], row["value"]]
    pack = Pack(rows, agreement, "2026Q3")
    gap = headlines(pack)[3]
    assert (gap.value, gap.note) == ("91.2%", "")  # (165 + 615) / 855
    nursing = {a.agency: a for a in agencies(pack)}["school-nursing"]
    assert (nursing.not_assessed, nursing.share) == ("90", "100.0%")
    assert (nursing.not_recorded, nursing.share_not_recorded) == ("not published",) * 2
    assert nursing.note == ""
    page = " ".join(build_pack(rows, agreement, "2026Q3", GENERATED).split())
    assert "This period was released before referrals whose agency does not record" in page


def test_linkage_shows_pseudonyms_children_and_events_by_identifier_basis(
    agreement: Agreement,
) -> None:
    """Pseudonyms beside children (the linked groups), events by identifier basis with
    their shares, a suppressed count as [c], and plain words on agency-local ids."""
    rows = both_publications(agreement, rising)
    linked = {"all": 200, "NHS_NUMBER": 120, "NAME_DOB": 40, "LOCAL_ID": 30, "NONE": 10}
    for value, n in linked.items():
        set_count(rows, "2026-07-01", "events", value, n)
    set_count(rows, "2026-07-01", "pseudonyms", "all", 190)
    set_count(rows, "2026-07-01", "children", "all", 150)
    set_count(rows, "2026-04-01", "events", "LOCAL_ID", None)  # the previous quarter
    rows = [  # the same quarter last year was released before linkage was counted
        r
        for r in rows
        if not (
            r["period_start"] == "2025-07-01"
            and (r["measure"] == "pseudonyms" or r["dimension"] == "subject_basis")
        )
    ]
    pack = Pack(rows, agreement, "2026Q3")

    shown = linkage(pack)
    assert shown.counted
    # 2026Q2 is the 7th quarter (base + 5 * 6), 2025Q3 the 4th (base + 5 * 3).
    assert [(r.label, r.current, r.previous, r.last_year) for r in shown.counts] == [
        ("Pseudonyms (before linkage)", "190", "120", "not published"),
        ("Children (linked groups)", "150", "110", "95"),
    ]
    # 2026Q2: events 100 + 30 = 130, NHS number 60 + 30 = 90, ...
    assert [(r.label, r.events, r.share, r.previous, r.last_year) for r in shown.bases] == [
        ("NHS number", "120", "60.0%", "69.2%", "not published"),
        ("Name and date of birth", "40", "20.0%", "38.5%", "not published"),
        ("An agency's own local id only", "30", "15.0%", "[c]", "not published"),
        ("No linkable identifier", "10", "5.0%", "26.9%", "not published"),
    ]
    assert shown.notes == [
        "30 events (15.0% of all events) could be linked only by an agency's own local id."
        " Such an id links records within its agency only, never across agencies: a child"
        " an agency knows only by its local id cannot be matched with other agencies'"
        " records, so if another agency knows the child too, they are counted as two"
        " children, and not as known to two or more agencies.",
        "10 events (5.0% of all events) had no linkable identifier: they count as events,"
        " never as children.",
        "Linkage joined pseudonyms of the same child: 190 pseudonyms are 150 children (both"
        " rounded to the nearest 5, so the difference is approximate).",
    ]
    page = " ".join(build_pack(rows, agreement, "2026Q3", GENERATED).split())
    assert "<h3>Linkage</h3>" in page
    assert "links records within its agency only, never across agencies" in page
    assert '<td>An agency&#39;s own local id only</td><td class="n">30</td>' in page


def test_linkage_when_suppressed_absent_or_not_yet_counted(agreement: Agreement) -> None:
    rows = both_publications(agreement, rising)
    set_count(rows, "2026-07-01", "events", "LOCAL_ID", None)
    set_count(rows, "2026-07-01", "pseudonyms", "all", None)
    for row in rows[:]:  # a basis outside the usual four: listed after them
        if (row["period_start"], row["value"]) == ("2026-07-01", "NONE"):
            rows.append({**row, "value": "OTHER", "count": 0})
    shown = linkage(Pack(rows, agreement, "2026Q3"))
    assert shown.counts[0].current == "[c]"
    assert [(r.label, r.events, r.share) for r in shown.bases][2:] == [
        ("An agency's own local id only", "[c]", "[c]"),
        ("No linkable identifier", "40", "29.6%"),  # 40 / 135
        ("Other", "0", "0.0%"),
    ]
    assert shown.notes[0] == (
        "Events linked only by an agency's own local id: the count is suppressed. Such an id"
        " links records within its agency only, never across agencies."
    )
    assert not any("Linkage joined" in note for note in shown.notes)  # pseudonyms hidden

    set_count(rows, "2026-07-01", "events", "LOCAL_ID", 0)
    assert not any("local id" in note for note in linkage(Pack(rows, agreement, "2026Q3")).notes)

    earlier = [
        r for r in rows if r["measure"] != "pseudonyms" and r["dimension"] != "subject_basis"
    ]
    assert not linkage(Pack(earlier, agreement, "2026Q3")).counted
    page = " ".join(build_pack(earlier, agreement, "2026Q3", GENERATED).split())
    assert "This period was released before linkage was counted" in page


# -- rendering in a browser --

CHROMIUM = "/usr/bin/chromium"


def _screenshot(html: Path, png: Path, profile: Path) -> subprocess.Popen[bytes]:
    browser = shutil.which("chromium") or CHROMIUM
    assert Path(browser).exists(), "install Debian's chromium package (/usr/bin/chromium)"
    return subprocess.Popen(
        [
            browser,
            "--headless",
            "--no-sandbox",  # the test may run as root
            "--disable-gpu",
            "--hide-scrollbars",
            # No calls home: this machine's network is closed, and a pack needs none.
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--screenshot={png}",
            "--window-size=1280,5200",
            html.as_uri(),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _pixels(png: Path, colours: list[str], tolerance: int = 12) -> dict[str, int]:
    """How many pixels of the screenshot are within `tolerance` of each colour."""
    image = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3).astype(np.int32)
    keys = image[:, 0] << 16 | image[:, 1] << 8 | image[:, 2]
    packed, counts = np.unique(keys, return_counts=True)
    seen = np.stack([packed >> 16, packed >> 8 & 255, packed & 255], axis=1)
    found = {}
    for colour in colours:
        rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
        found[colour] = int(counts[np.abs(seen - rgb).max(axis=1) <= tolerance].sum())
    return found


def test_the_charts_hold_data_in_a_browser(agreement: Agreement, tmp_path: Path) -> None:
    packs = {
        "full": both_publications(agreement, rising),
        "suppressed": both_publications(agreement, lambda i, base: None),
    }
    runs = {}
    for name, rows in packs.items():
        html = tmp_path / f"{name}.html"
        html.write_text(build_pack(rows, agreement, "2026Q3", GENERATED), encoding="utf-8")
        runs[name] = _screenshot(html, tmp_path / f"{name}.png", tmp_path / f"profile-{name}")
    for name, run in runs.items():
        assert run.wait(timeout=60) == 0, f"chromium failed on the {name} pack"

    colours = [c for key, cs in COLOURS.items() if key != "age" for c in cs] + [*COLOURS["age"][:3]]
    full = _pixels(tmp_path / "full.png", colours)
    empty = _pixels(tmp_path / "suppressed.png", colours)
    assert {c: n for c, n in full.items() if n < 150} == {}, full
    assert {c: n for c, n in empty.items() if n > 10} == {}, empty
