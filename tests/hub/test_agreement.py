from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from adapters.profile import load_profile
from hub.agreement.model import (
    Agreement,
    AgreementError,
    check_agreement,
    format_loc,
    load_agreement,
)
from hub.disclosure import DisclosureRule
from hub.errors import ConfigError
from tests.support.agreements import EXAMPLE_PARTNERS

EXAMPLE = Path(__file__).parents[2] / "deploy" / "agreement" / "example.yaml"
PARTNERS = EXAMPLE_PARTNERS
LONDON = ZoneInfo("Europe/London")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def example_data() -> dict[str, object]:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "agreement.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def assert_at_its_line(path: Path, problem: str) -> tuple[str, str]:
    """(location, message) of a "<file>:<line>: <location>: <message>" problem whose line
    is where the location's last key, or its list item, is written in `path`."""
    where, loc, message = problem.split(": ", 2)
    file, line = where.rsplit(":", 1)
    assert file == str(path), problem
    text = path.read_text(encoding="utf-8").splitlines()[int(line) - 1]
    last = re.findall(r"[a-z_]+|\[\d+\]", loc)[-1]
    assert f"{last}:" in text or text.lstrip().startswith("- "), (problem, text)
    return loc, message


def with_schedule(cron: str) -> Agreement:
    data = example_data()
    data["publication"] = [
        {"name": "daily", "closes": "month", "at": {"cron": cron}, "topic": "partnership.trends.v1"}
    ]
    return Agreement.model_validate(data)


def test_the_shipped_example_passes_the_check() -> None:
    assert check_agreement(EXAMPLE) == []
    agreement = load_agreement(EXAMPLE)
    # Every partner has a shipped profile of the same agency type.
    assert {p.id: p.type for p in agreement.partners} == {
        a: load_profile(a).agency_type for a in PARTNERS
    }
    assert agreement.partner("spa").topic == "cases.spa"
    assert agreement.case_topics == tuple(f"cases.{p}" for p in PARTNERS)
    assert {s.name: s.closes for s in agreement.publication} == {
        "monthly": "month",
        "board-quarterly": "quarter",
    }
    assert agreement.disclosure == DisclosureRule()
    assert (agreement.disclosure.suppress_at_or_below, agreement.disclosure.round_to) == (7, 5)
    assert agreement.readers[0].principal == "User:analysts"
    assert agreement.retention.trends_days is None
    assert agreement.taxonomy.cell_of("LOCAL_GAMING_CHAT_CONTACT") == "CONTACT_SEXUAL"
    assert agreement.taxonomy.cell_of("GROOMING") == "CONTACT_SEXUAL"


def test_unknown_partner_or_schedule_is_a_config_error() -> None:
    agreement = load_agreement(EXAMPLE)
    with pytest.raises(ConfigError, match="no partner 'nobody'.*camhs"):
        agreement.partner("nobody")
    with pytest.raises(ConfigError, match="no publication 'weekly'.*monthly"):
        agreement.next_publication("weekly", utc(2026, 1, 1))


def broken_data() -> dict[str, object]:
    data = example_data()
    partners = data["partners"]
    publication = data["publication"]
    readers = data["readers"]
    codes = data["local_risk_codes"]
    assert isinstance(partners, list) and isinstance(publication, list)
    assert isinstance(readers, list) and isinstance(codes, list)
    data["timezone"] = "Europe/Londres"
    partners[1]["type"] = "SOCIAL_WORK"
    partners[2]["submit_by"] = {"cron": "0 25 5 * *"}
    partners[4]["id"] = "camhs"
    partners[4]["topic"] = "cases.counselling"
    publication[1]["at"] = {"cron": "0 9 15 1,4,7,10"}
    readers[0]["topics"] = ["partnership.trends.v1", "cases.police"]
    codes.append({"code": "LOCAL_DEEPFAKE_NUDES", "cell": "CONTACT_DEEPFAKE"})
    codes.append({"code": "GROOMING", "cell": "CONTACT_SEXUAL"})
    return data


EXPECTED_LOCATIONS = {
    "timezone": "not an IANA timezone",
    "partners[1].type": "Input should be 'CAMHS'",
    "partners[2].submit_by.cron": "'0 25 5 * *' is not a five-field cron",
    "partners[4].id": "duplicate partner id 'camhs' (first at partners[0].id)",
    "partners[4].topic": "partner 'camhs' must use topic cases.camhs",
    "publication[1].at.cron": "'0 9 15 1,4,7,10' is not a five-field cron",
    "readers[0].topics[1]": "'cases.police' is not a publication topic",
    "local_risk_codes[1].cell": "cell 'CONTACT_DEEPFAKE' is not one of",
    "local_risk_codes[2].code": "local code GROOMING is already defined",
}


def test_a_broken_agreement_reports_every_problem_with_its_location(tmp_path: Path) -> None:
    path = write(tmp_path, broken_data())

    problems = check_agreement(path)

    found = dict(assert_at_its_line(path, line) for line in problems)
    assert set(found) == set(EXPECTED_LOCATIONS), problems
    for loc, fragment in EXPECTED_LOCATIONS.items():
        assert fragment in found[loc], (loc, found[loc])

    with pytest.raises(ConfigError) as raised:
        load_agreement(path)
    assert isinstance(raised.value, AgreementError)
    assert raised.value.problems == problems
    for line in problems:
        assert line in str(raised.value)


@pytest.mark.parametrize(
    ("change", "loc", "fragment"),
    [
        (
            {"disclosure": {"suppress_at_or_below": -1}},
            "disclosure.suppress_at_or_below",
            "than or equal to 0",
        ),
        ({"disclosure": {"round_to": 0}}, "disclosure.round_to", "than or equal to 1"),
        ({"disclosure": {"rounding": 5}}, "disclosure.rounding", "Extra inputs are not permitted"),
        (
            {"retention": {"case_events_days": 0}},
            "retention.case_events_days",
            "than or equal to 1",
        ),
        ({"partnership": "Example Partnership"}, "partnership", "should match pattern"),
        ({"surprise": 1}, "surprise", "Extra inputs are not permitted"),
    ],
)
def test_field_rules(tmp_path: Path, change: dict[str, object], loc: str, fragment: str) -> None:
    data = example_data()
    data.update(change)
    [problem] = check_agreement(path := write(tmp_path, data))
    assert assert_at_its_line(path, problem)[0] == loc
    assert fragment in problem


def test_duplicate_names_topics_and_case_topic_publication(tmp_path: Path) -> None:
    data = example_data()
    publication = data["publication"]
    assert isinstance(publication, list)
    publication[1]["name"] = "monthly"
    publication[1]["topic"] = "cases.police"
    problems = [line.split(": ", 2)[1:] for line in check_agreement(write(tmp_path, data))]
    assert problems == [
        [
            "publication[1].name",
            "duplicate publication name 'monthly' (first at publication[0].name)",
        ],
        ["publication[1].topic", "publish to an aggregate topic, not cases.*"],
    ]


# -- areas: the closed vocabulary of area cells --


def test_the_example_lists_the_partnerships_areas() -> None:
    areas = load_agreement(EXAMPLE).area_vocabulary
    assert len(areas) == 7
    assert areas.code_of("Brierley Hill") == "brierley-hill"
    assert areas.code_of("  brierley   HILL ") == "brierley-hill"  # case and spacing
    assert areas.code_of("BRIERLEY-HILL") == "brierley-hill"  # by code
    assert areas.code_of("dudley town centre") == "dudley"  # by alias
    assert areas.code_of("Brierley") is None
    assert areas.code_of("DY1 4RT") is None


def test_without_areas_the_vocabulary_is_empty() -> None:
    data = example_data()
    del data["areas"]
    areas = Agreement.model_validate(data).area_vocabulary
    assert len(areas) == 0 and not areas
    assert areas.code_of("Dudley") is None


def test_area_problems_are_each_reported_with_their_location(tmp_path: Path) -> None:
    data = example_data()
    data["areas"] = [
        {"code": "dudley", "name": "Dudley", "aliases": ["Dudley town centre", "dudley"]},
        {"code": "halesowen", "name": "DUDLEY"},  # a name another area has
        {"code": "has space", "name": "Has space"},
        {"code": "sedgley", "name": "Sedgley", "aliases": ["Halesowen"]},
        {"code": "DY14RT", "name": "A full postcode"},
        {"code": "nowhere", "name": "Unknown"},
        {"code": "blank", "name": "  "},
        {"code": "tabbed", "name": "Tab\tbed"},
        {"name": "No code"},
        {"code": "stourbridge", "name": "Stourbridge", "aliases": ["DY8 1AB"], "ward": 1},
    ]
    path = write(tmp_path, data)
    found = dict(assert_at_its_line(path, line) for line in check_agreement(path))
    expected = {
        "areas[1].name": "'DUDLEY' already names the area 'dudley' (areas[0])",
        "areas[2].code": "should match pattern",
        "areas[3].aliases[0]": "'Halesowen' already names the area 'halesowen' (areas[1])",
        "areas[4].code": "a full postcode is not an area",
        "areas[5].name": "'unknown' is the value of an area not recorded",
        "areas[6].name": "must be printable text, not blank",
        "areas[7].name": "must be printable text, not blank",
        "areas[8].code": "Field required",
        "areas[9].aliases": "a full postcode is not an area",
        "areas[9].ward": "Extra inputs are not permitted",
    }
    assert set(found) == set(expected), found
    for loc, fragment in expected.items():
        assert fragment in found[loc], (loc, found[loc])


def test_unreadable_and_invalid_yaml_files_are_reported(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    [problem] = check_agreement(missing)
    assert problem.startswith(f"{missing}: (file): cannot read it")
    bad = tmp_path / "bad.yaml"
    bad.write_text("partnership: [unclosed\n", encoding="utf-8")
    [problem] = check_agreement(bad)
    assert problem.startswith(f"{bad}:2:1: not valid YAML: expected ',' or ']'")
    assert problem.endswith("(while parsing a flow sequence at line 1)")
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    [problem] = check_agreement(empty)
    assert problem.startswith(f"{empty}: (top level): ")
    twice = tmp_path / "twice.yaml"
    twice.write_text("partnership: a\ntimezone: UTC\npartnership: b\n", encoding="utf-8")
    [problem] = check_agreement(twice)
    assert problem.startswith(f'{twice}:3:1: not valid YAML: found duplicate key "partnership"')


def test_format_loc() -> None:
    assert format_loc(("partners", 2, "submit_by", "cron")) == "partners[2].submit_by.cron"
    assert format_loc(("timezone",)) == "timezone"
    assert format_loc(()) == "(top level)"


# -- the timetable: UK clocks go forward on 29 March 2026 and back on 25 October 2026 --


def test_monthly_publication_stays_at_nine_local_across_both_clock_changes() -> None:
    agreement = load_agreement(EXAMPLE)
    winter = agreement.next_publication("monthly", utc(2026, 3, 1))
    summer = agreement.next_publication("monthly", winter)
    assert winter == utc(2026, 3, 10, 9)
    assert summer == utc(2026, 4, 10, 8)
    assert summer.tzinfo == LONDON and summer.hour == 9
    assert agreement.next_publication("monthly", utc(2026, 10, 1)) == utc(2026, 10, 10, 8)
    assert agreement.next_publication("monthly", utc(2026, 10, 10, 8)) == utc(2026, 11, 10, 9)


def test_daily_schedule_on_the_days_the_clocks_change() -> None:
    agreement = with_schedule("0 9 * * *")
    assert agreement.next_publication("daily", utc(2026, 3, 28, 8)) == utc(2026, 3, 28, 9)
    assert agreement.next_publication("daily", utc(2026, 3, 28, 9)) == utc(2026, 3, 29, 8)
    assert agreement.next_publication("daily", utc(2026, 10, 24, 8)) == utc(2026, 10, 25, 9)
    assert agreement.next_publication("daily", utc(2026, 10, 25, 8, 30)) == utc(2026, 10, 25, 9)


def test_skipped_and_repeated_wall_times_run_once() -> None:
    agreement = with_schedule("30 1 * * *")
    # 01:30 does not exist on 29 March: it runs when the clock reads 02:30 BST.
    spring = agreement.next_publication("daily", utc(2026, 3, 29, 0))
    assert spring == utc(2026, 3, 29, 1, 30)
    assert (spring.hour, spring.minute, spring.utcoffset()) == (2, 30, timedelta(hours=1))
    # 01:30 happens twice on 25 October: it runs the first time only. An ambiguous
    # local time never compares equal to another zone's (PEP 495), so compare in UTC.
    autumn = agreement.next_publication("daily", utc(2026, 10, 25, 0))
    assert autumn.astimezone(UTC) == utc(2026, 10, 25, 0, 30)
    assert (autumn.hour, autumn.minute, autumn.utcoffset()) == (1, 30, timedelta(hours=1))
    assert agreement.next_publication("daily", utc(2026, 10, 25, 0, 30)) == utc(2026, 10, 26, 1, 30)
    assert agreement.next_publication("daily", utc(2026, 10, 25, 1, 10)) == utc(2026, 10, 26, 1, 30)


def test_a_schedule_may_override_the_timezone() -> None:
    data = example_data()
    data["publication"] = [
        {
            "name": "monthly",
            "closes": "month",
            "at": {"cron": "0 9 10 * *"},
            "topic": "partnership.trends.v1",
            "timezone": "America/New_York",
        }
    ]
    agreement = Agreement.model_validate(data)
    assert agreement.next_publication("monthly", utc(2026, 1, 1)) == utc(2026, 1, 10, 14)


def test_naive_times_are_refused() -> None:
    agreement = load_agreement(EXAMPLE)
    with pytest.raises(ValueError, match="no timezone"):
        agreement.next_publication("monthly", datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="no timezone"):
        agreement.closed_period("monthly", datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("schedule", "at", "period"),
    [
        ("monthly", utc(2026, 1, 10, 9), (date(2025, 12, 1), date(2025, 12, 31))),
        ("monthly", utc(2026, 3, 10, 9), (date(2026, 2, 1), date(2026, 2, 28))),
        ("monthly", utc(2028, 3, 10, 9), (date(2028, 2, 1), date(2028, 2, 29))),
        ("monthly", utc(2026, 5, 10, 8), (date(2026, 4, 1), date(2026, 4, 30))),
        ("board-quarterly", utc(2026, 1, 15, 9), (date(2025, 10, 1), date(2025, 12, 31))),
        ("board-quarterly", utc(2026, 4, 15, 8), (date(2026, 1, 1), date(2026, 3, 31))),
        ("board-quarterly", utc(2026, 7, 15, 8), (date(2026, 4, 1), date(2026, 6, 30))),
        ("board-quarterly", utc(2026, 10, 15, 8), (date(2026, 7, 1), date(2026, 9, 30))),
        # 23:30 UTC on 30 June is already 1 July in London: the second quarter has closed.
        ("board-quarterly", utc(2026, 6, 30, 23, 30), (date(2026, 4, 1), date(2026, 6, 30))),
        ("board-quarterly", utc(2026, 6, 30, 22, 30), (date(2026, 1, 1), date(2026, 3, 31))),
    ],
)
def test_closed_period(schedule: str, at: datetime, period: tuple[date, date]) -> None:
    assert load_agreement(EXAMPLE).closed_period(schedule, at) == period


def test_agreement_check_command(tmp_path: Path) -> None:
    from hub.settings import HubSettings
    from tests.support.processes import hub

    good = hub(HubSettings(), "agreement", "check", "deploy/agreement/example.yaml")
    assert good.returncode == 0 and "the agreement is valid" in good.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        Path("deploy/agreement/example.yaml").read_text().replace("Europe/London", "Mars/Base", 1)
    )
    bad = hub(HubSettings(), "agreement", "check", str(broken))
    assert bad.returncode == 1
    line = 1 + broken.read_text().splitlines().index("timezone: Mars/Base")
    assert f"{broken}:{line}: timezone: " in bad.stderr and "Mars/Base" in bad.stderr

    # With HUB_AGREEMENT naming the broken file: a command that needs the agreement says
    # what is wrong with it; one that does not, runs.
    settings = HubSettings(agreement=broken)
    refused = hub(settings, "security", "acls")
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"error: {broken}:{line}: timezone: ")
    assert "Traceback" not in refused.stderr
    checked = hub(settings, "agreement", "check", "deploy/agreement/example.yaml")
    assert checked.returncode == 0, checked.stderr
    listed = hub(HubSettings(), "security", "acls")
    assert listed.returncode == 0 and "User:camhs-adapter WRITE topic cases.camhs" in listed.stdout
