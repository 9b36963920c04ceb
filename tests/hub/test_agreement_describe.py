"""`hub agreement describe`: the agreement as a document its signatories read, checked
against the YAML file itself (read here with yaml, not through the hub's model)."""

from __future__ import annotations

import re
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from hub.agreement.describe import cron_in_words
from hub.settings import HubSettings
from tests.support.agreements import EXAMPLE_AGREEMENT
from tests.support.processes import hub

SHAREABLE = {
    "age_band",
    "sex",
    "area_code",
    "vulnerabilities",
    "threshold_level",
    "platform_types",
    "role",
    "outcome",
}


def described(tmp_path: Path, *args: str, source: Path = EXAMPLE_AGREEMENT) -> str:
    result = hub(HubSettings(), "agreement", "describe", str(source), *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def table_rows(markdown: str, first_header: str) -> dict[str, list[str]]:
    """The rows of the Markdown table whose first header is `first_header`, by first cell."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows: dict[str, list[str]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        rows[cells[0]] = cells
    return rows


def test_every_partner_and_what_it_shares_and_does_not(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE_AGREEMENT.read_text(encoding="utf-8"))
    text = described(tmp_path, "--as-of", "2026-12-01")
    rows = table_rows(text, "Partner")
    assert set(rows) == {p["id"] for p in data["partners"]}
    for partner in data["partners"]:
        shares = partner.get("shares", sorted(SHAREABLE))
        row = rows[partner["id"]]
        assert row[2] == partner["principal"]
        assert set(row[4].split(", ")) == set(shares)
        withheld = SHAREABLE - set(shares)
        assert set(row[5].split(", ")) == (withheld or {"nothing"})


def test_the_timetable_gives_the_next_release_dates(tmp_path: Path) -> None:
    rows = table_rows(described(tmp_path, "--as-of", "2026-12-01"), "Publication")
    # monthly: 09:00 on the 10th; board-quarterly: 09:00 on 15 January, April, July, October.
    monthly = [d.strftime("%a %d %b %Y 09:00") for d in (date(2026, 12, 10), date(2027, 1, 10))]
    assert rows["monthly"][3].split("; ")[:2] == monthly
    quarterly = [date(2027, m, 15).strftime("%a %d %b %Y 09:00") for m in (1, 4, 7)]
    assert rows["board-quarterly"][3].split("; ") == quarterly
    assert rows["monthly"][2] == "at 09:00 on day 10 of every month"


def test_the_disclosure_rule_and_retention_are_the_files(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE_AGREEMENT.read_text(encoding="utf-8"))
    text = described(tmp_path, "--as-of", "2026-12-01")
    rule = data["disclosure"]
    assert f"No count from 1 to {rule['suppress_at_or_below']} is published" in text
    assert f"rounded to the nearest {rule['round_to']}." in text
    assert f"Case events: {data['retention']['case_events_days']} days" in text
    for reader in data["readers"]:
        assert reader["principal"] in table_rows(text, "Principal")


def test_the_audit_trail_and_who_reads_it_are_the_files(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE_AGREEMENT.read_text(encoding="utf-8"))
    text = described(tmp_path, "--as-of", "2026-12-01")
    readers = data["audit"]["readers"]
    assert readers and f"by the operator and by {', '.join(f'`{r}`' for r in readers)}." in text
    assert "The audit trail: kept." in text
    data["audit"] = {"readers": []}
    data["retention"]["audit_days"] = 3650
    source = tmp_path / "agreement.yaml"
    source.write_text(yaml.safe_dump(data), encoding="utf-8")
    text = described(tmp_path, "--as-of", "2026-12-01", source=source)
    assert "by the operator only." in text and "The audit trail: 3650 days." in text


def test_html_is_one_escaped_page(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE_AGREEMENT.read_text(encoding="utf-8"))
    data["local_risk_codes"][0]["label"] = "<script>alert(1)</script> & more"
    source = tmp_path / "agreement.yaml"
    source.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    out = tmp_path / "agreement.html"
    result = hub(
        HubSettings(), "agreement", "describe", str(source), "--format", "html", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stdout
    page = out.read_text(encoding="utf-8")
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page

    class Cells(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.open: list[str] = []
            self.tables = 0

        def handle_starttag(self, tag: str, attrs: object) -> None:
            self.tables += tag == "table"
            if tag not in ("meta", "br"):
                self.open.append(tag)

        def handle_endtag(self, tag: str) -> None:
            assert self.open.pop() == tag, f"</{tag}> closes another element"

    parser = Cells()
    parser.feed(page)
    assert parser.open == [] and parser.tables >= 5
    for partner in data["partners"]:
        assert f"<td>{partner['id']}</td>" in page


def test_a_bad_agreement_is_reported_not_described(tmp_path: Path) -> None:
    source = tmp_path / "bad.yaml"
    text = EXAMPLE_AGREEMENT.read_text(encoding="utf-8")
    source.write_text(re.sub(r"shares: \[age_band,", "shares: [age_band, nhs_number,", text))
    result = hub(HubSettings(), "agreement", "describe", str(source))
    assert result.returncode == 1
    assert "shares" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("cron", "words"),
    [
        ("0 9 10 * *", "at 09:00 on day 10 of every month"),
        ("0 9 15 1,4,7,10 *", "at 09:00 on day 15 of January, April, July and October"),
        ("30 6 * * 1,5", "at 06:30 on Mondays and Fridays"),
        ("0 17 * * *", "at 17:00, every day"),
        ("*/5 * * * *", "on the schedule `*/5 * * * *`"),
        ("0 9 1-7 * 1", "on the schedule `0 9 1-7 * 1`"),
    ],
)
def test_cron_in_words(cron: str, words: str) -> None:
    assert cron_in_words(cron) == words
