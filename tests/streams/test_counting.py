"""The per-record rules the worker applies, on their own."""

from __future__ import annotations

from typing import Any

from streams.counting import RiskCounts, apply_event


def record(version: int, codes: list[str], event_type: str = "REFERRAL") -> dict[str, Any]:
    return {
        "record_key": "r" * 64,
        "record_version": version,
        "event_type": event_type,
        "online_risks": codes,
        "subject": None,
    }


def run(events: list[dict[str, Any]]) -> tuple[RiskCounts, list[str]]:
    """Apply events in order as the worker does; the counts and each event's kind."""
    table: dict[str, Any] = {}
    counts, kinds = RiskCounts(), []
    for event in events:
        change = apply_event(table.get(event["record_key"]), 0, event)
        kinds.append(change.kind)
        if change.store is None:
            continue
        table[event["record_key"]] = change.store
        if change.retract is not None:
            counts.remove(0, change.retract["codes"], change.retract["basis"])
        if change.add is not None:
            counts.add(0, change.add["codes"], change.add["basis"])
    return counts, kinds


def test_replays_corrections_withdrawals_and_late_versions() -> None:
    counts, kinds = run(
        [
            record(1, ["GROOMING"]),
            record(1, ["GROOMING"]),  # replay
            record(2, ["SEXTORTION"], "CORRECTION"),  # correction replaces the code
            record(1, ["GROOMING"]),  # late old version
            record(3, [], "WITHDRAWN"),  # withdrawn
            record(2, ["SEXTORTION"]),  # late replay of a withdrawn version
        ]
    )
    assert kinds == ["new", "duplicate", "correction", "stale", "withdrawal", "stale"]
    by_code, by_basis, total = counts.snapshot()
    assert total == 0 and by_code.get("GROOMING", 0) == 0 and by_code.get("SEXTORTION", 0) == 0
    assert by_basis.get("NONE", 0) == 0


def live(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}


def test_rebuild_from_the_table_equals_the_running_counts() -> None:
    table: dict[str, Any] = {}
    running = RiskCounts()
    for i, (version, codes, kind) in enumerate(
        [(1, ["A"], "REFERRAL"), (1, ["B"], "REFERRAL"), (2, ["C"], "CORRECTION")]
    ):
        event = record(version, codes, kind) | {"record_key": f"k{i % 2}"}
        change = apply_event(table.get(event["record_key"]), i % 2, event)
        assert change.store is not None
        table[event["record_key"]] = change.store
        if change.retract is not None:
            running.remove(i % 2, change.retract["codes"], change.retract["basis"])
        if change.add is not None:
            running.add(i % 2, change.add["codes"], change.add["basis"])
    rebuilt = RiskCounts()
    rebuilt.rebuild(table.values(), {0, 1})
    assert live(rebuilt.snapshot()[0]) == live(running.snapshot()[0]) == {"B": 1, "C": 1}
    assert rebuilt.snapshot()[2] == running.snapshot()[2] == 2
