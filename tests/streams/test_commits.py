"""What the worker's consumer commits (``streams.commits``): a run of acknowledged
offsets starting exactly at the committed offset, never past an event that was not
acknowledged."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from typing import Any

from faust.types import TP
from intervaltree import IntervalTree  # type: ignore[import-untyped]

from streams.commits import StrictConsumer

POLICE = TP("t.cases.police", 1)


def consumer(committed: int | None, acked: list[int], gap: tuple[int, int] | None = None) -> Any:
    gaps: defaultdict[TP, IntervalTree] = defaultdict(IntervalTree)
    if gap is not None:
        gaps[POLICE].addi(*gap)
    return SimpleNamespace(
        _acked={POLICE: list(acked)},
        _acked_index={POLICE: set(acked)},
        _committed_offset={POLICE: committed},
        _gap=gaps,
    )


def new_offset(state: Any) -> int | None:
    return StrictConsumer._new_offset(state, POLICE)  # noqa: SLF001


def test_a_run_from_the_committed_offset_is_committed() -> None:
    state = consumer(9, [9, 10, 11])
    assert new_offset(state) == 12
    assert state._acked[POLICE] == []  # noqa: SLF001


def test_an_event_at_the_committed_offset_not_acknowledged_holds_the_commit() -> None:
    # Faust's own check lets 10..12 through here (10 - 9 is not > 1), losing offset 9.
    assert new_offset(consumer(9, [10, 11, 12])) is None


def test_a_hole_in_the_middle_stops_the_run_before_it() -> None:
    state = consumer(9, [9, 11, 12])
    assert new_offset(state) == 10
    assert new_offset(state) is None  # 10 is still missing: nothing more


def test_offsets_never_read_count_as_acknowledged() -> None:
    assert new_offset(consumer(9, [9, 12], gap=(10, 12))) == 13


def test_nothing_acknowledged_commits_nothing() -> None:
    assert new_offset(consumer(4, [])) is None
    assert new_offset(consumer(None, [0, 1])) == 2
