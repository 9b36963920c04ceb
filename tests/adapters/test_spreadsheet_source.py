"""Workbooks read directly: real .xlsx (openpyxl), .ods (built here) and an encrypted .xlsx."""

from __future__ import annotations

import datetime as dt
import sys
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from xml.sax.saxutils import escape

import msoffcrypto.format.ooxml
import pytest
from openpyxl import Workbook

import adapters.runner
from adapters.mapping import RowMapper
from adapters.outbox import Outbox
from adapters.pipeline import Adapter
from adapters.profile import Profile, load_profile
from adapters.runner import AdapterRun, adapter_run, file_source, watch
from adapters.sources.base import SourceRecord
from adapters.sources.delimited import FileError
from adapters.sources.spreadsheet import SpreadsheetSource, cell_text, date_text
from hub.errors import HubError, RecordError
from hub.minimise import Minimiser
from hub.models import EventType
from hub.pseudonymise import KeyRing, Pseudonymiser, write_key_file
from hub.settings import HubSettings
from tests.support.processes import hub

Row = Sequence[object]

#: The youth service's own headers (adapters/profiles/youth-service.yaml).
HEADER = [
    "Ref",
    "Type of Contact",
    "Date",
    "Surname",
    "First name",
    "DOB",
    "Gender",
    "Postcode",
    "Online issue",
    "Outcome",
    "NEET",
    "Young carer",
]
#: As a youth worker keeps them: real date cells, a date typed as text, a date-time,
#: a number for a reference, accented names (what cp1252 CSVs from Excel garble).
ROWS: list[Row] = [
    [
        "YS-0101",
        "Detached",
        dt.date(2026, 9, 14),
        "Lefèvre",
        "Zoë",
        dt.date(2013, 5, 2),
        "Girl",
        "DY1 4RT",
        "Cyber bullying",
        "Advice given",
        "",
        "Y",
    ],
    [
        "YS-0102",
        "1-2-1 session",
        "15/09/2026",
        "Núñez",
        "José",
        "02/05/2011",
        "Boy",
        "DY8 1AA",
        "Sexting, Gaming all night",
        "Referred to MASH",
        "Yes",
        "",
    ],
    [
        1103,
        "Incident",
        dt.datetime(2026, 9, 16, 18, 45),
        "Œuvray",
        "Chloé",
        dt.date(2010, 1, 31),
        "Female",
        "B62 9QQ",
        "County lines",
        "Police informed",
        "",
        "",
    ],
]


def write_xlsx(
    path: Path, sheets: dict[str, list[Row]], first_row: int = 1, hidden: Sequence[str] = ()
) -> Path:
    """A real Excel workbook: one worksheet per entry, rows from `first_row`; None is no cell."""
    book = Workbook()
    assert book.active is not None
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        if name in hidden:
            sheet.sheet_state = "hidden"
        for offset, row in enumerate(rows):
            for column, value in enumerate(row, start=1):
                if value is not None and value != "":
                    sheet.cell(first_row + offset, column, value)
    book.save(path)
    return path


def _ods_cell(value: object) -> str:
    if value is None or value == "":
        return "<table:table-cell/>"
    if isinstance(value, dt.datetime):
        shown = value.strftime("%d/%m/%Y %H:%M")
        kind = f'office:value-type="date" office:date-value="{value.isoformat()}"'
    elif isinstance(value, dt.date):
        shown = value.strftime("%d/%m/%y")  # what the cell shows is not what it holds
        kind = f'office:value-type="date" office:date-value="{value.isoformat()}"'
    elif isinstance(value, int | float):
        shown = str(value)
        kind = f'office:value-type="float" office:value="{value}"'
    else:
        shown = str(value)
        kind = 'office:value-type="string"'
    return f"<table:table-cell {kind}><text:p>{escape(shown)}</text:p></table:table-cell>"


def write_ods(path: Path, sheets: dict[str, list[Row]]) -> Path:
    """An OpenDocument spreadsheet as LibreOffice writes one, reduced to what a reader needs."""
    tables = []
    for name, rows in sheets.items():
        xml_rows = []
        for row in rows:
            if not any(cell not in (None, "") for cell in row):
                xml_rows.append(
                    '<table:table-row table:number-rows-repeated="1">'
                    "<table:table-cell/></table:table-row>"
                )
                continue
            xml_rows.append(f"<table:table-row>{''.join(map(_ods_cell, row))}</table:table-row>")
        tables.append(f'<table:table table:name="{escape(name)}">{"".join(xml_rows)}</table:table>')
    content = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<office:document-content office:version="1.2"'
        ' xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
        ' xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"'
        ' xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0">'
        f"<office:body><office:spreadsheet>{''.join(tables)}</office:spreadsheet></office:body>"
        "</office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<manifest:manifest manifest:version="1.2"'
        ' xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
        '<manifest:file-entry manifest:full-path="/"'
        ' manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    with zipfile.ZipFile(path, "w") as archive:
        mimetype = "application/vnd.oasis.opendocument.spreadsheet"
        archive.writestr(zipfile.ZipInfo("mimetype"), mimetype, zipfile.ZIP_STORED)
        archive.writestr("META-INF/manifest.xml", manifest, zipfile.ZIP_DEFLATED)
        archive.writestr("content.xml", content, zipfile.ZIP_DEFLATED)
    return path


def youth_workbook(rows: list[Row]) -> dict[str, list[Row]]:
    """The youth service's workbook: sessions first, a lists sheet behind it; a blank row
    between the header and the first session, and one between sessions."""
    body: list[Row] = [HEADER, []]
    for row in rows:
        body += [row, []]
    return {"Sessions 2026": body, "Lists": [["Outcome"], ["Advice given"], ["NFA"]]}


def read(path: Path, profile: Profile) -> list[SourceRecord | RecordError]:
    return list(SpreadsheetSource(path, profile).records())


def records(path: Path, profile: Profile) -> list[SourceRecord]:
    items = read(path, profile)
    assert all(isinstance(item, SourceRecord) for item in items), items
    return [item for item in items if isinstance(item, SourceRecord)]


@pytest.fixture
def youth() -> Profile:
    return load_profile("youth-service")


@pytest.fixture
def settings(tmp_path: Path) -> HubSettings:
    """Settings with a key and an outbox of the test's own; no Kafka is needed."""
    key_file = tmp_path / "partnership.key"
    write_key_file(key_file, KeyRing.generate("t"))
    return HubSettings(
        key_file=key_file, outbox=tmp_path / "outbox.sqlite", bootstrap="127.0.0.1:1"
    )


# --- what the source yields -------------------------------------------------------------------
EXPECTED_FIRST = {
    "Ref": "YS-0101",
    "Type of Contact": "Detached",
    "Date": "2026-09-14",
    "Surname": "Lefèvre",
    "First name": "Zoë",
    "DOB": "2013-05-02",
    "Gender": "Girl",
    "Postcode": "DY1 4RT",
    "Online issue": "Cyber bullying",
    "Outcome": "Advice given",
    "NEET": "",
    "Young carer": "Y",
}


def test_xlsx_rows_are_the_sheets_own_rows_as_text(tmp_path: Path, youth: Profile) -> None:
    path = write_xlsx(tmp_path / "Sessions – Zoë’s team.xlsx", youth_workbook(ROWS), first_row=3)
    got = records(path, youth)
    # Header on row 3; sessions on rows 5, 7 and 9 (blank rows between them are skipped).
    assert [r.row for r in got] == [5, 7, 9]
    assert {r.source for r in got} == {str(path)}
    assert got[0].values == EXPECTED_FIRST
    assert got[1].values["Date"] == "15/09/2026"  # typed text stays as typed
    assert got[1].values["DOB"] == "02/05/2011"
    assert got[2].values["Ref"] == "1103"  # a number cell, not "1103.0"
    assert got[2].values["Date"] == "2026-09-16"  # youth-service reads no time: the day
    assert got[2].values["Surname"] == "Œuvray"


def test_ods_yields_the_same_as_xlsx(tmp_path: Path, youth: Profile) -> None:
    xlsx = write_xlsx(tmp_path / "sessions.xlsx", youth_workbook(ROWS))
    ods = write_ods(tmp_path / "sessions.ods", youth_workbook(ROWS))
    from_ods = records(ods, youth)
    assert [r.row for r in from_ods] == [3, 5, 7]
    assert [r.values for r in from_ods] == [r.values for r in records(xlsx, youth)]
    assert from_ods[0].values == EXPECTED_FIRST


def test_cells_become_the_text_a_person_reads() -> None:
    iso = ("%Y-%m-%d",)
    assert cell_text(3.0, iso) == "3"
    assert cell_text(9434765919.0, iso) == "9434765919"  # an NHS number typed as a number
    assert cell_text(-0.0, iso) == "0"
    assert cell_text(0.1 + 0.2, iso) == "0.3"  # what Excel shows, 15 significant digits
    assert cell_text(1e-7, iso) == "0.0000001"
    assert cell_text(2.5, iso) == "2.5"
    assert cell_text(7, iso) == "7"
    assert cell_text(True, iso) == "TRUE" and cell_text(False, iso) == "FALSE"
    assert cell_text("", iso) == ""
    assert cell_text(dt.date(2026, 9, 14), iso) == "2026-09-14"
    assert cell_text(dt.time(10, 30), iso) == "10:30:00"
    assert cell_text(dt.timedelta(hours=30, minutes=5), iso) == "30:05:00"
    with_time = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d")
    assert cell_text(dt.datetime(2026, 9, 14, 18, 45), with_time) == "2026-09-14 18:45:00"
    assert cell_text(dt.datetime(2026, 9, 14, 18, 45), iso) == "2026-09-14"


def test_date_cells_follow_a_profile_that_does_not_read_iso() -> None:
    day = dt.date(2026, 9, 14)
    assert date_text(day, ("%d/%m/%Y",)) == "14/09/2026"
    assert date_text(day, ("%d-%b-%y", "%d/%m/%Y")) == "14-Sep-26"
    # A two-digit year cannot carry 1960: the next format that reads it back is used.
    assert date_text(dt.date(1960, 5, 2), ("%d/%m/%y", "%d/%m/%Y")) == "02/05/1960"
    # US order first: written so that the first format that parses it gives the same day.
    assert date_text(dt.date(2026, 3, 4), ("%m/%d/%Y", "%d/%m/%Y")) == "03/04/2026"
    assert date_text(dt.datetime(2026, 9, 14, 9, 5), ("%d/%m/%Y %H:%M",)) == "14/09/2026 09:05"
    assert date_text(day, ("%m/%Y",)) == "2026-09-14"  # no format holds the day: ISO, rejected


def test_date_cells_are_accepted_by_a_profile_without_iso(
    tmp_path: Path, youth: Profile, settings: HubSettings
) -> None:
    """Through the real mapper: a profile with only UK formats accepts real date cells."""
    uk = youth.model_copy(update={"date_formats": ("%d/%m/%Y", "%d/%m/%y")})
    assert "%Y-%m-%d" not in uk.date_formats
    path = write_xlsx(tmp_path / "uk.xlsx", youth_workbook(ROWS))
    got = records(path, uk)
    assert got[0].values["Date"] == "14/09/2026" and got[0].values["DOB"] == "02/05/2013"
    mapper = RowMapper(uk, Pseudonymiser.from_settings(settings), str(path))
    events = [mapper.map(r.row, r.values) for r in got]
    assert [e.occurred_on for e in events] == [
        dt.date(2026, 9, 14),
        dt.date(2026, 9, 15),
        dt.date(2026, 9, 16),
    ]
    assert events[0].age_band == "11-13" and events[2].event_type is EventType.INCIDENT


def test_a_named_sheet_is_read_and_a_missing_one_named(tmp_path: Path, youth: Profile) -> None:
    sheets = youth_workbook(ROWS[:1]) | {"Referrals": [HEADER, ROWS[1], ROWS[2]]}
    path = write_xlsx(tmp_path / "book.xlsx", sheets)
    assert len(records(path, youth)) == 1  # by default the first sheet
    for name in ("Referrals", "  referrals "):
        named = youth.model_copy(update={"sheet": name})
        got = records(path, named)
        assert [(r.row, r.values["Ref"]) for r in got] == [(2, "YS-0102"), (3, "1103")]
    missing = youth.model_copy(update={"sheet": "2027"})
    with pytest.raises(FileError) as caught:
        read(path, missing)
    message = str(caught.value)
    assert str(path) in message and "'2027'" in message
    assert "'Sessions 2026', 'Lists', 'Referrals'" in message


def test_a_hidden_first_sheet_is_passed_over(tmp_path: Path, youth: Profile) -> None:
    sheets = {"Dropdowns": [["Outcome"], ["Advice given"]], **youth_workbook(ROWS)}
    path = write_xlsx(tmp_path / "book.xlsx", sheets, hidden=["Dropdowns"])
    assert [r.values["Ref"] for r in records(path, youth)] == ["YS-0101", "YS-0102", "1103"]


def test_rows_wider_than_the_header_are_rejected_shorter_ones_padded(
    tmp_path: Path, youth: Profile
) -> None:
    short = ["YS-0201", "Drop in", dt.date(2026, 9, 20)]
    wide = [*ROWS[0][:12], "", "note in column N"]
    path = write_xlsx(tmp_path / "book.xlsx", {"S": [HEADER, short, wide, ROWS[1]]})
    items = read(path, youth)
    assert isinstance(items[0], SourceRecord) and items[0].row == 2
    assert items[0].values["Date"] == "2026-09-20" and items[0].values["Young carer"] == ""
    assert len(items[0].values) == len(HEADER)
    assert isinstance(items[1], RecordError)
    assert (items[1].row, items[1].field) == (3, "*")
    assert items[1].reason == "14 cells where the header has 12"
    assert "column N" not in str(items[1])  # never the value
    assert isinstance(items[2], SourceRecord) and items[2].row == 4


# --- workbooks that cannot be read --------------------------------------------------------------
def test_unreadable_workbooks_are_file_errors_naming_the_file(
    tmp_path: Path, youth: Profile
) -> None:
    good = write_xlsx(tmp_path / "good.xlsx", youth_workbook(ROWS)).read_bytes()
    truncated = tmp_path / "truncated.xlsx"
    truncated.write_bytes(good[: len(good) // 2])
    renamed_csv = tmp_path / "export.xlsx"
    renamed_csv.write_text("Ref,Date\nYS-1,14/09/2026\n")
    web_page = tmp_path / "report.xls"
    web_page.write_text("<html><table><tr><td>Ref</td></tr></table></html>")
    not_ods = tmp_path / "sessions.ods"
    not_ods.write_bytes(b"PK\x03\x04" + b"\0" * 64)
    for path in (truncated, renamed_csv, web_page, not_ods):
        with pytest.raises(FileError) as caught:
            read(path, youth)
        message = str(caught.value)
        assert message.startswith(f"{path}, row 0, field '*': not a workbook that can be read")
        assert "corrupt" in message and "\n" not in message
        assert "Ref" not in message  # nothing of the file's content


def test_a_password_protected_workbook_says_so(tmp_path: Path, youth: Profile) -> None:
    plain = write_xlsx(tmp_path / "plain.xlsx", youth_workbook(ROWS))
    locked = tmp_path / "locked.xlsx"
    with plain.open("rb") as source, locked.open("wb") as out:
        msoffcrypto.format.ooxml.OOXMLFile(source).encrypt("Passw0rd!", out)
    with pytest.raises(FileError, match=r"locked\.xlsx.*password-protected: save a copy"):
        read(locked, youth)


def test_an_empty_workbook_is_a_file_error(tmp_path: Path, youth: Profile) -> None:
    path = write_xlsx(tmp_path / "empty.xlsx", {"Sessions": [[], [None, ""]]})
    with pytest.raises(FileError, match=r"empty\.xlsx.*the sheet 'Sessions' is empty"):
        read(path, youth)


def test_a_workbook_under_another_workbook_suffix_is_still_read(
    tmp_path: Path, youth: Profile
) -> None:
    path = write_xlsx(tmp_path / "sessions.xlsx", youth_workbook(ROWS))
    misnamed = path.rename(tmp_path / "sessions.xls")  # old systems' "Excel export"
    assert len(records(misnamed, youth)) == 3


def test_without_python_calamine_the_error_says_what_to_install(
    tmp_path: Path, youth: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_xlsx(tmp_path / "sessions.xlsx", youth_workbook(ROWS))
    monkeypatch.setitem(sys.modules, "python_calamine", None)  # import fails
    with pytest.raises(HubError) as caught:
        read(path, youth)
    assert not isinstance(caught.value, RecordError)
    assert "pip install 'online-risk-hub[spreadsheet]'" in str(caught.value)
    assert str(path) in str(caught.value)


# --- the runner ---------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".xlsx", ".XLSX", ".xlsm", ".xls", ".ods"])
def test_file_source_picks_the_spreadsheet_source(suffix: str, youth: Profile) -> None:
    assert isinstance(file_source(Path(f"export{suffix}"), youth), SpreadsheetSource)
    assert suffix.lower() in adapters.runner.FILE_SUFFIXES


@pytest.fixture
def run(settings: HubSettings, tmp_path: Path, youth: Profile) -> Iterator[AdapterRun]:
    """A real (not dry) run of the youth-service profile into an outbox, no Kafka behind it."""
    outbox = Outbox(settings.outbox)
    adapter = Adapter(
        youth,
        settings.case_topic("youth-service"),
        Pseudonymiser.from_settings(settings),
        outbox,
        tmp_path / "quarantine",
        Minimiser.from_settings(settings),
        agency="youth-service",
    )
    try:
        yield AdapterRun(settings, youth, adapter, outbox, None)
    finally:
        outbox.close()


def test_a_large_workbook_is_not_counted_as_lines(
    run: AdapterRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_xlsx(tmp_path / "sessions.xlsx", youth_workbook(ROWS))
    monkeypatch.setattr(adapters.runner, "PROGRESS_ABOVE_BYTES", 0)  # every file is "large"

    def no_count(path: Path) -> int:
        raise AssertionError(f"{path} is a binary workbook: its lines mean nothing")

    monkeypatch.setattr(adapters.runner, "count_lines", no_count)
    summary = run.ingest_file(path)
    assert (summary.read, summary.accepted, summary.rejected) == (3, 3, [])


def test_the_watched_folder_takes_workbooks(run: AdapterRun, tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    write_xlsx(folder / "sessions.xlsx", youth_workbook(ROWS))
    write_ods(folder / "sessions.ods", youth_workbook(ROWS))
    (folder / "broken.xlsx").write_bytes(b"PK\x03\x04 not a workbook")
    watch(run, folder, settle=0.0, once=True)
    assert sorted(p.name for p in (folder / "done").iterdir()) == ["sessions.ods", "sessions.xlsx"]
    assert [p.name for p in (folder / "failed").iterdir()] == ["broken.xlsx"]
    assert run.outbox is not None and run.outbox.counts()[0] == 3  # the same three, once


# --- through the command line, as the youth service's IT would -----------------------------------
def test_check_accepts_the_youth_service_workbook_row_by_row(
    settings: HubSettings, tmp_path: Path
) -> None:
    path = write_xlsx(tmp_path / "Youth sessions Sept.xlsx", youth_workbook(ROWS))
    result = hub(settings, "adapter", "check", "--profile", "youth-service", str(path))
    assert result.returncode == 0, result.stderr
    assert f"{path}: 3 rows read;" in result.stdout
    assert "0 rejected" in result.stdout and "rejected:" not in result.stdout
    # Row by row, as the dry run maps them.
    with adapter_run(settings, "youth-service", None, dry_run=True) as dry:
        source = file_source(path, dry.profile)
        mapper = dry.adapter.mapper(source.name)
        mapped = {}
        for item in source.records():
            assert isinstance(item, SourceRecord)
            mapped[item.row] = mapper.map(item.row, item.values)
    assert sorted(mapped) == [3, 5, 7]
    assert [mapped[n].occurred_on.day for n in (3, 5, 7)] == [14, 15, 16]
    assert [mapped[n].event_type for n in (3, 5, 7)] == [
        EventType.CONTACT,
        EventType.CONTACT,
        EventType.INCIDENT,
    ]
    assert "Lefèvre" not in result.stdout + result.stderr


def test_check_on_a_corrupt_workbook_is_one_line_and_no_traceback(
    settings: HubSettings, tmp_path: Path
) -> None:
    path = tmp_path / "Youth sessions.xlsx"
    good = write_xlsx(tmp_path / "good.xlsx", youth_workbook(ROWS)).read_bytes()
    path.write_bytes(good[:1000] + b"\xff" * 500)
    result = hub(settings, "adapter", "check", "--profile", "youth-service", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {path}, row 0, field '*': not a workbook that can be read")
