"""Workbooks (.xlsx, .xlsm, .xls, .ods), read directly with python-calamine.

python-calamine is an optional extra (``pip install 'online-risk-hub[spreadsheet]'``);
without it, reading a workbook raises a `HubError` that says so.

The sheet is the profile's ``sheet`` or else the first visible worksheet; its
first non-empty row is the header. Row numbers are the sheet's own (the row a
person sees in Excel or LibreOffice), blank rows are skipped. Every cell
becomes the text a person reading the sheet would type:

* text as it is; whole numbers without ``.0``; other numbers to 15
  significant digits (what Excel shows), never in exponent form;
  ``TRUE``/``FALSE``; an empty or error cell "".
* a date cell as ISO ``YYYY-MM-DD`` and a date-time as ``YYYY-MM-DD HH:MM:SS``
  when the profile's ``date_formats`` read that back as the same day. For a
  profile that does not read ISO, the date is written in the first of the
  profile's own formats that reads back as the same day, so a real date cell
  is never rejected for its format (a date typed as text is left as typed).
* a time as ``HH:MM:SS``, a duration as ``H:MM:SS``.

Cells are padded to the header, since a spreadsheet row has no length of its
own; a row with a value to the right of the header's last column is rejected
as CsvSource rejects a row longer than its header. An unreadable, corrupt or
password-protected workbook, or a missing sheet, is a `FileError` naming the
file.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator, Sequence
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from adapters.profile import Profile, vocabulary_key
from adapters.sources.base import SourceKind, SourceRecord
from adapters.sources.delimited import FileError
from hub.errors import RecordError, extra_needed

if TYPE_CHECKING:
    from python_calamine import CalamineWorkbook

LOCKED_REASON = (
    "the workbook is password-protected: save a copy without a password to open and read that"
)
#: What a cell of a sheet can hold, as python-calamine gives it.
Cell: TypeAlias = int | float | str | bool | dt.time | dt.date | dt.datetime | dt.timedelta


class SpreadsheetSource:
    def __init__(self, path: Path, profile: Profile) -> None:
        self.path = path
        self.name = str(path)
        self.profile = profile

    @property
    def kind(self) -> SourceKind:
        return "other"

    def records(self) -> Iterator[SourceRecord | RecordError]:
        sheet, rows = self._sheet_rows()
        header: list[str] | None = None
        for number, cells in enumerate(rows, start=1):
            texts = [cell_text(cell, self.profile.date_formats) for cell in cells]
            width = used_width(texts)
            if width == 0:
                continue
            if header is None:
                header = texts[:width]
                continue
            if width > len(header):
                yield RecordError(
                    self.name, number, "*", f"{width} cells where the header has {len(header)}"
                )
                continue
            values = texts[: len(header)] + [""] * (len(header) - len(texts))
            yield SourceRecord(self.name, number, dict(zip(header, values, strict=True)))
        if header is None:
            raise FileError(self.name, f"the sheet {sheet!r} is empty")

    def _sheet_rows(self) -> tuple[str, list[list[Cell]]]:
        """The chosen sheet's name and every row of it from row 1, cells from column A."""
        with extra_needed(f"{self.name}: reading workbooks (.xlsx, .xls, .ods)"):
            import python_calamine as calamine
        with self._open() as workbook:
            sheet = self._sheet_name(workbook)
            try:
                rows = workbook.get_sheet_by_name(sheet).to_python(skip_empty_area=False)
            except calamine.PasswordError as exc:
                raise FileError(self.name, LOCKED_REASON) from exc
            except calamine.CalamineError as exc:
                raise FileError(
                    self.name,
                    f"the sheet {sheet!r} cannot be read: the workbook is corrupt"
                    f" ({type(exc).__name__})",
                ) from exc
        return sheet, rows

    def _open(self) -> CalamineWorkbook:
        """The workbook; by its suffix first, then by its content (an .xlsx saved as .xls)."""
        import python_calamine as calamine

        try:
            return calamine.load_workbook(self.path)
        except calamine.PasswordError as exc:
            raise FileError(self.name, LOCKED_REASON) from exc
        except OSError as exc:
            raise FileError(self.name, f"cannot read the file: {exc.strerror or exc}") from exc
        except calamine.CalamineError as exc:
            first = exc
        try:
            return calamine.CalamineWorkbook.from_filelike(io.BytesIO(self.path.read_bytes()))
        except (calamine.CalamineError, OSError):
            pass
        suffix = self.path.suffix or "workbook"
        raise FileError(
            self.name,
            f"not a workbook that can be read ({type(first).__name__}): the file is corrupt,"
            f" truncated, or not really a {suffix} file (a CSV or web page renamed?)",
        ) from first

    def _sheet_name(self, workbook: CalamineWorkbook) -> str:
        """The profile's sheet (exactly, or else by case and spacing), or the first visible one."""
        from python_calamine import SheetVisibleEnum

        names = workbook.sheet_names
        if not names:
            raise FileError(self.name, "the workbook has no sheets")
        wanted = self.profile.sheet
        if wanted is None:
            shown = SheetVisibleEnum.Visible
            visible = [m.name for m in workbook.sheets_metadata if m.visible == shown]
            return (visible or names)[0]
        if wanted in names:
            return wanted
        alike = [n for n in names if vocabulary_key(n) == vocabulary_key(wanted)]
        if len(alike) == 1:
            return alike[0]
        raise FileError(
            self.name,
            f"the workbook has no sheet {wanted!r} (the profile's sheet);"
            f" its sheets: {', '.join(repr(n) for n in names)}",
        )


def used_width(texts: Sequence[str]) -> int:
    """How many cells a row uses: up to its last one that is not blank."""
    for index in range(len(texts) - 1, -1, -1):
        if texts[index].strip():
            return index + 1
    return 0


def cell_text(value: Cell, date_formats: tuple[str, ...]) -> str:
    """A cell as text, the way a person reading the sheet would type it (see the module)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return number_text(value)
    if isinstance(value, dt.date):  # a datetime is a date too
        return date_text(value, date_formats)
    if isinstance(value, dt.time):
        return value.isoformat(timespec="seconds")
    seconds = int(value.total_seconds())
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    return f"{sign}{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def number_text(value: float) -> str:
    """15 significant digits, as Excel shows them; no exponent, no trailing ``.0``."""
    if value == 0:
        return "0"
    return format(Decimal(format(value, ".15g")), "f")


@lru_cache(maxsize=4096)
def date_text(value: dt.date, date_formats: tuple[str, ...]) -> str:
    """ISO, or else the first of the profile's formats, that the profile reads back as the day.

    A date-time keeps its time only where the profile reads it. When no format
    can carry the day (none has a day, say), ISO: the mapper then rejects it
    naming the formats, as it would a typed date.
    """
    day = value.date() if isinstance(value, dt.datetime) else value
    iso = value.isoformat(" ", "seconds") if isinstance(value, dt.datetime) else value.isoformat()
    for text in (iso, day.isoformat(), *(value.strftime(fmt) for fmt in date_formats)):
        if read_back(text, date_formats) == day:
            return text
    return iso


def read_back(text: str, date_formats: tuple[str, ...]) -> dt.date | None:
    """The day the mapper reads from `text`: the first of the formats that parses it."""
    for fmt in date_formats:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None
