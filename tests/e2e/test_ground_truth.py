"""Ground truth, end to end, through the public CLI only: six months of the nine
partners' own exports (tests/e2e/exports.py) go through `hub adapter run` to a
real broker and a real worker, `hub publish --now` releases each month, and
every published cell of the events and children measures is compared with a
count made from the generator's own records (tests/e2e/truth.py) under the
disclosure rule. Each adapter run's summary line is checked too, against what
the generator knows each file holds.

The second test does the same with the worker SIGKILLed in the middle and the
adapter's outbox lost half-way, recovered as documented: each full-snapshot
agency re-runs the last snapshot it ingested before the loss.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import astuple, dataclass, field, fields
from datetime import datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook

from hub.settings import HubSettings
from tests.e2e.agencies import AGENCIES, YOUTH, Agency
from tests.e2e.exports import LAST as LAST_MONTH
from tests.e2e.exports import MONTHS, Export, Scenario, build, fold, nhs_check_digit
from tests.e2e.truth import (
    MEASURES,
    SUPPRESS_AT_OR_BELOW,
    AdapterMemory,
    CellKey,
    Summary,
    late_records,
    published_value,
    true_counts,
)
from tests.support.processes import WorkerProcess, hub

PARTNER_TYPES = {
    "camhs": "CAMHS",
    "police": "POLICE",
    "spa": "CHILDRENS_SOCIAL_CARE",
    "school-nursing": "SCHOOL_NURSING",
    "education": "EDUCATION",
    "youth-service": "YOUTH_SERVICE",
    "relationships": "RELATIONSHIPS_SERVICE",
    "voluntary": "VOLUNTARY_SECTOR",
    "counselling": "COUNSELLING",
}
SUMMARY = re.compile(
    r"^(?P<path>.+?): (?P<read>\d+) rows read; (?P<new>\d+) new, (?P<corrected>\d+) corrected,"
    r" (?P<withdrawn>\d+) withdrawn, (?P<unchanged>\d+) unchanged,"
    r" (?P<rejected>\d+) rejected(?: \((?P<reasons>.*)\))?;"
    r" (?P<unlinked>\d+) with no linkable subject$"
)
#: Where the crash test breaks things: the worker after this month's police run,
#: the outbox once this month's files are all in.
CRASH_MONTH, KILL_AFTER = 2, "police"


def agreement_yaml() -> str:
    """The nine partners, a monthly publication and the default disclosure rule."""
    partners = "".join(
        f"  - id: {name}\n    type: {kind}\n    topic: cases.{name}\n"
        f'    principal: User:{name}-adapter\n    submit_by: {{cron: "0 17 5 * *"}}\n'
        for name, kind in PARTNER_TYPES.items()
    )
    return (
        "partnership: e2e-ground-truth\n"
        "timezone: Europe/London\n"
        f"partners:\n{partners}"
        "publication:\n"
        "  - name: monthly\n"
        "    closes: month\n"
        '    at: {cron: "0 9 10 * *"}\n'
        "    topic: partnership.trends.v1\n"
        "disclosure:\n"
        f"  suppress_at_or_below: {SUPPRESS_AT_OR_BELOW}\n"
        "  round_to: 5\n"
        "  secondary_suppression: true\n"
        "retention:\n"
        "  case_events_days: 2555\n"
        # The counselling feed's area cell (tests/e2e/agencies.py): an area the agreement lists.
        "areas:\n"
        "  - {code: E08000035, name: Leeds, aliases: [Leeds City Council]}\n"
    )


@dataclass
class Partnership:
    """One test's hub, driven as its users would: every step is a `hub` command."""

    settings: HubSettings
    folder: Path
    memory: AdapterMemory = field(default_factory=AdapterMemory)
    problems: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    #: (agency, what the file holds) for every file an adapter ran, in order.
    submitted: list[tuple[str, Summary]] = field(default_factory=list)

    def run(self, *args: str) -> str:
        started = time.monotonic()
        result = hub(self.settings, *args)
        self.timings[args[0]] = self.timings.get(args[0], 0.0) + time.monotonic() - started
        output = result.stdout + result.stderr
        command = f"`hub {' '.join(args)}`"
        assert result.returncode == 0, f"{command} exited {result.returncode}:\n{output[-4000:]}"
        assert "Traceback" not in output, f"{command}:\n{output[-4000:]}"
        return result.stdout

    def adapter(self, agency: Agency, exports: list[Export]) -> None:
        """One `hub adapter run` of `exports`; each file's summary line checked."""
        quarantine = self.folder / "quarantine"
        stdout = self.run(
            "adapter", "run", "--profile", agency.name, "--quarantine", str(quarantine),
            *(str(e.path) for e in exports),
        )  # fmt: skip
        said = {m["path"]: m for m in map(SUMMARY.match, stdout.splitlines()) if m is not None}
        for export in exports:
            expected = self.memory.expect(export)
            self.submitted.append((agency.name, expected))
            line = said.get(str(export.path))
            if line is None:
                printed = [t for t in stdout.splitlines() if t.startswith(f"{export.path}: ")]
                self.problems.append(
                    f"{export.path.name}: no summary line '<path>: <read> rows read; <new> new,"
                    f" ...'; `hub adapter run` printed: {(printed or [stdout[-300:]])[0]!r}"
                )
                continue
            actual = Summary(*(int(line[f.name]) for f in fields(Summary)))
            if actual != expected:
                self.problems.append(
                    f"{export.path.name}: the adapter said {_said(actual)};"
                    f" the file holds {_said(expected)}"
                )


def _said(summary: Summary) -> str:
    return ", ".join(
        f"{n} {f.name}" for f, n in zip(fields(Summary), astuple(summary), strict=True)
    )


def resent_copy(export: Export) -> Export:
    """An identical copy of an export already run, as a scheduler retry leaves it."""
    copy = export.path.with_name(f"{export.path.stem} (resent){export.path.suffix}")
    shutil.copyfile(export.path, copy)
    return Export(export.agency, export.month, copy, export.rows)


def lose_outbox(settings: HubSettings) -> None:
    outbox = settings.outbox
    assert outbox.exists(), f"the adapter's outbox is not at HUB_OUTBOX ({outbox})"
    for suffix in ("", "-wal", "-shm"):
        outbox.with_name(f"{outbox.name}{suffix}").unlink(missing_ok=True)


@pytest.fixture
def partnership(hub_settings: HubSettings, tmp_path: Path) -> Partnership:
    agreement = tmp_path / "agreement.yaml"
    agreement.write_text(agreement_yaml(), encoding="utf-8")
    settings = hub_settings.model_copy(update={"agreement": agreement})
    return Partnership(settings, tmp_path)


@pytest.fixture
def scenario() -> Scenario:
    return build()


@pytest.fixture
def worker(partnership: Partnership) -> Iterator[WorkerProcess]:
    process = WorkerProcess(partnership.settings, partnership.folder / "worker.log")
    try:
        yield process
    finally:
        process.stop()


def ingest_everything(
    partnership: Partnership, scenario: Scenario, worker: WorkerProcess, crash: bool
) -> None:
    exports = scenario.write(partnership.folder / "exports")
    partnership.run("agreement", "check", str(partnership.settings.agreement))
    partnership.run("topics", "apply")
    worker.start()
    for month in range(len(MONTHS)):
        for agency in AGENCIES:
            files = [exports[agency.name, month]]
            earlier = scenario.resent.get((agency.name, month))
            if earlier is not None:
                files.insert(0, resent_copy(exports[agency.name, earlier]))
            partnership.adapter(agency, files)
            if crash and month == CRASH_MONTH and agency.name == KILL_AFTER:
                worker.kill()  # while it is still working through what police just sent
                worker.start()
        if crash and month == CRASH_MONTH:
            lose_outbox(partnership.settings)
            partnership.memory.forget()
            for agency in AGENCIES:  # the documented recovery: re-run the last snapshot
                if agency.full:
                    partnership.adapter(agency, [exports[agency.name, month]])
    for period in MONTHS:
        released = partnership.run(
            "publish", "--now", "--period", period, "--wait", "240", "--reason", "test release"
        )
        assert f"released monthly {period}" in released, released


@dataclass
class Comparison:
    mismatches: list[tuple[CellKey, int, int | None, int | None]] = field(default_factory=list)
    missing: list[tuple[CellKey, int]] = field(default_factory=list)
    compared: int = 0
    informative: int = 0  # published, with a true count above the threshold
    above: int = 0  # cells with a true count above the threshold
    secondary: int = 0  # withheld although their true count is not in 1..threshold

    def report(self) -> str:
        lines = [
            f"{len(self.mismatches)} published cells differ from the ground truth"
            f" ({self.compared} compared):",
            f"  {'measure':<9} {'dimension':<18} {'value':<34} {'period':<8}"
            f" {'true':>5} {'expected':>10} {'published':>10}",
        ]
        for (measure, dimension, value, period), true, expected, got in self.mismatches[:80]:
            lines.append(
                f"  {measure:<9} {dimension:<18} {value:<34} {period:<8} {true:>5}"
                f" {_shown(expected):>10} {_shown(got):>10}"
            )
        if len(self.mismatches) > 80:
            lines.append(f"  ... and {len(self.mismatches) - 80} more")
        for (measure, dimension, value, period), true in self.missing:
            lines.append(f"  not published at all: {measure} {dimension} {value} {period}: {true}")
        return "\n".join(lines)


def _shown(count: int | None) -> str:
    return "suppressed" if count is None else str(count)


def published_cells(stdout: str) -> dict[CellKey, int | None]:
    """`hub subscribe --format csv` rows of the measures compared: count, None when withheld."""
    cells: dict[CellKey, int | None] = {}
    for row in csv.DictReader(io.StringIO(stdout)):
        period = row["period_start"][:7]
        pair = (row["measure"], row["dimension"])
        if row["publication"] != "monthly" or period not in MONTHS or pair not in MEASURES:
            continue
        suppressed = row["suppressed"] == "True"
        assert suppressed == (row["count"] == ""), row
        cells[row["measure"], row["dimension"], row["value"], period] = (
            None if suppressed else int(row["count"])
        )
    return cells


def compare(published: dict[CellKey, int | None], truth: dict[CellKey, int]) -> Comparison:
    result = Comparison()
    for key in sorted(set(published) | set(truth)):
        true = truth.get(key, 0)
        result.above += true > SUPPRESS_AT_OR_BELOW
        if key not in published:
            result.missing.append((key, true))
            continue
        result.compared += 1
        got, expected = published[key], published_value(true)
        if got is None and expected is not None:
            result.secondary += 1  # withheld to protect another cell: allowed, counted
        elif got != expected:
            result.mismatches.append((key, true, expected, got))
        elif true > SUPPRESS_AT_OR_BELOW:
            result.informative += 1
    return result


def check_publication(partnership: Partnership, scenario: Scenario) -> None:
    listed = partnership.run("subscribe", "--from", MONTHS[0], "--format", "csv")
    result = compare(published_cells(listed), true_counts(scenario))
    failures = []
    if result.mismatches or result.missing:
        failures.append(result.report())
    if partnership.problems:
        shown = partnership.problems[:30] + [f"... and {len(partnership.problems) - 30} more"] * (
            len(partnership.problems) > 30
        )
        failures.append(
            f"{len(partnership.problems)} adapter summaries differ from what the files hold:\n  "
            + "\n  ".join(shown)
        )
    timings = ", ".join(f"{k} {v:.0f} s" for k, v in sorted(partnership.timings.items()))
    print(  # shown with -s
        f"time spent per command: {timings}; {result.compared} cells compared,"
        f" {result.informative} published above the threshold, {result.secondary} of"
        f" {result.above} above it withheld"
    )
    assert not failures, "\n\n".join(failures)
    assert result.informative >= 100, (
        f"only {result.informative} cells above the threshold were published and compared"
    )
    assert result.secondary * 2 < result.above, (
        f"{result.secondary} of {result.above} cells above the threshold withheld"
    )


def check_audit(partnership: Partnership, scenario: Scenario) -> None:
    """The audit trail (`hub audit`): each adapter run's submission says what the file
    holds, and each month's release counts every small true count as a primary
    suppression and the cells the reader sees."""
    listed = partnership.run("audit", "--format", "jsonl")
    entries = [json.loads(line) for line in listed.splitlines() if line.strip()]
    said: dict[str, list[tuple[int, ...]]] = {}
    for entry in entries:
        if entry["kind"] == "SUBMISSION":
            s = entry["submission"]
            counts = (s["read"], s["new"], s["changed"], s["withdrawn"], s["unchanged"])
            said.setdefault(s["agency"], []).append((*counts, sum(s["rejected"].values())))
    held: dict[str, list[tuple[int, ...]]] = {}
    for agency, summary in partnership.submitted:
        held.setdefault(agency, []).append(astuple(summary)[:6])
    assert said == held, "the audit trail's submissions differ from what the files hold"

    truth = true_counts(scenario)
    rows = list(csv.DictReader(io.StringIO(partnership.run("subscribe", "--format", "csv"))))
    releases = {e["release"]["period_start"][:7]: e for e in entries if e["kind"] == "RELEASE"}
    assert sorted(releases) == sorted(MONTHS)
    for month, entry in releases.items():
        release = entry["release"]
        assert (entry["reason"], release["forced"], release["revision"]) == (
            "test release",
            True,
            0,
        )
        small = sum(
            1 for key, n in truth.items() if key[3] == month and 0 < n <= SUPPRESS_AT_OR_BELOW
        )
        assert release["suppressed_primary"] >= small > 0, (month, release)
        shown = [r for r in rows if r["period_start"].startswith(month)]
        hidden = sum(1 for r in shown if r["suppressed"] == "True")
        assert (release["cells"], release["published"]) == (len(shown), len(shown) - hidden)
        kinds = ("suppressed_primary", "suppressed_secondary", "suppressed_linked")
        assert sum(release[k] for k in kinds) == hidden


def test_published_cells_equal_the_ground_truth(
    partnership: Partnership, scenario: Scenario, worker: WorkerProcess
) -> None:
    ingest_everything(partnership, scenario, worker, crash=False)
    check_publication(partnership, scenario)
    check_audit(partnership, scenario)


def test_ground_truth_survives_a_killed_worker_and_a_lost_outbox(
    partnership: Partnership, scenario: Scenario, worker: WorkerProcess
) -> None:
    ingest_everything(partnership, scenario, worker, crash=True)
    check_publication(partnership, scenario)


# --- the generator itself: what the end-to-end tests rely on it to contain ------------------
def test_the_exports_have_the_mess_real_exports_have(tmp_path: Path) -> None:
    scenario = build()
    assert build().records[-1].identity == scenario.records[-1].identity  # seeded
    exports = scenario.write(tmp_path)
    again = build().write(tmp_path / "again")
    for key, export in exports.items():
        assert export.path.read_bytes() == again[key].path.read_bytes(), key
    for (name, _), earlier in scenario.resent.items():  # a re-send is the very same bytes
        original = exports[name, earlier]
        assert resent_copy(original).path.read_bytes() == original.path.read_bytes(), name

    police = [r for r in scenario.records if r.agency.name == "police"]
    people: dict[str, set[int]] = {}
    for r in police:
        assert r.child is not None
        people.setdefault(r.record_id, set()).add(r.child.number)
    sizes = {len(children) for children in people.values()}
    assert {1, 2, 3} <= sizes

    camhs = [r for r in scenario.records if r.agency.name == "camhs"]
    activities: dict[str, set[str]] = {}
    for r in camhs:
        activities.setdefault(r.record_id, set()).add(r.identity[1])
    assert (
        sum({"Referral", "Choice Appointment", "Discharge"} <= a for a in activities.values()) > 20
    )
    assert sum(r.final.withdrawn for r in camhs) >= 3  # "Referral Withdrawn" rows
    assert sum(r.final.withdrawn for r in police) >= 5  # "Cancelled"
    for agency in AGENCIES:
        mine = scenario.of(agency)
        assert sum(len(r.contents) > 1 for r in mine) >= 5, f"{agency.name}: corrections"
        assert sum(r.late for r in mine) >= 3, f"{agency.name}: late records"
        if agency.full:
            assert sum(r.deleted for r in mine) >= 3, f"{agency.name}: rows that disappear"
    assert len(late_records(scenario)) >= 100
    assert len(scenario.resent) >= 6
    assert {b.agency.name for b in scenario.bad} >= {
        "camhs",
        "police",
        "youth-service",
        "counselling",
    }


def test_identifiers_link_children_only_through_what_agencies_hold(tmp_path: Path) -> None:
    scenario = build()
    for child in scenario.children:
        assert nhs_check_digit(child.nhs[:9]) == int(child.nhs[9])
    assert nhs_check_digit("401023213") != 8  # camhs's bad row really is bad
    keys = {(fold(c.family), fold(c.given), c.born) for c in scenario.children}
    assert len(keys) == len(scenario.children)  # name + DOB never collide
    nhs_only = [r for r in scenario.records if r.nhs_only]
    assert len(nhs_only) >= 30
    for r in nhs_only:  # a live row with NHS number, name and DOB links each such child
        assert r.child is not None
        assert any(b.bridge and b.live and b.child is r.child for b in scenario.records)
    anonymous = [r for r in scenario.records if r.child is None]
    assert anonymous and all(r.agency.name == "counselling" for r in anonymous)

    exports = scenario.write(tmp_path)
    assert exports["camhs", 0].path.read_bytes().startswith(b"\xef\xbb\xbf")
    voluntary = exports["voluntary", LAST_MONTH].path.read_bytes()
    assert not voluntary.isascii()
    with pytest.raises(UnicodeDecodeError):
        voluntary.decode("utf-8")
    # The youth service's workbook: a blank row above the header, real date cells in
    # most rows, dates typed as text in a few (in each of the staff's formats), accents.
    sheet = load_workbook(exports["youth-service", LAST_MONTH].path).active
    blank, header, *rows = sheet.iter_rows(values_only=True)
    assert not any(blank) and header == YOUTH.headers()
    session, born, family, given = map(
        header.index, ("Date of Session", "D.O.B", "Surname", "First name")
    )
    dates = [row[i] for row in rows for i in (session, born)]
    typed = [d for d in dates if isinstance(d, str)]
    assert 0 < len(typed) < len(dates) / 5  # a few: the rest are real date cells
    assert all(isinstance(d, datetime) for d in dates if not isinstance(d, str))
    for pattern in (
        r"\d\d/\d\d/\d{4}",
        r"\d\d-[A-Z][a-z]{2}-\d\d",
        r"\d{4}-\d\d-\d\d",
        r"\d\d\.\d\d\.\d{4}",
    ):
        assert any(re.fullmatch(pattern, d) for d in typed), pattern
    assert any(not f"{row[family]}{row[given]}".isascii() for row in rows)

    truth = true_counts(scenario)
    assert sum(v > SUPPRESS_AT_OR_BELOW for v in truth.values()) >= 120
    assert any(1 <= v <= SUPPRESS_AT_OR_BELOW for v in truth.values())  # some are withheld
    for period in MONTHS:
        assert truth["children", "known_to_agencies", "2+", period] > SUPPRESS_AT_OR_BELOW
        assert truth["children", "known_to_agencies", "1", period] > SUPPRESS_AT_OR_BELOW


def test_the_adapter_summaries_expected_follow_the_exports(tmp_path: Path) -> None:
    """A re-sent file is all unchanged; snapshots withdraw what disappears; a lost
    outbox makes the recovery re-run all new."""
    scenario = build()
    exports = scenario.write(tmp_path)
    memory = AdapterMemory()
    withdrawn = corrected = 0
    for month in range(len(MONTHS)):
        for agency in AGENCIES:
            earlier = scenario.resent.get((agency.name, month))
            if earlier is not None:
                again = memory.expect(exports[agency.name, earlier])
                assert again.unchanged + again.rejected == again.read, (agency.name, month)
            said = memory.expect(exports[agency.name, month])
            withdrawn += said.withdrawn
            corrected += said.corrected
            assert said.read == len(exports[agency.name, month].rows)
    assert withdrawn >= 40 and corrected >= 100
    memory.forget()
    police = memory.expect(exports["police", LAST_MONTH])
    assert police.new + police.withdrawn + police.rejected == police.read
