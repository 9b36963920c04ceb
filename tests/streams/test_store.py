"""The worker's records on disk (``streams.store``): the same answers as in memory, one
partition's records apart from another's, and nothing left from an earlier run."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.state import PartitionState, WorkerState
from streams.store import Disk
from tests.support.versions import applied_once, twice_shuffled, version


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Disk]:
    store = Disk(tmp_path_factory.mktemp("store") / "records")
    yield store
    store.close()


changes = st.lists(
    st.tuples(
        st.sampled_from(["r1", "r2", "r3", "r4", "r5"]),
        st.integers(1, 5),
        st.booleans(),
        st.sampled_from(["camhs", "police"]),
        st.sampled_from([("GROOMING",), ("CYBERBULLYING", "GROOMING"), ()]),
    ),
    max_size=40,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(changes, st.integers(0, 300))
def test_records_on_disk_give_what_records_in_memory_give(
    disk: Disk, stream: list[tuple[str, int, bool, str, tuple[str, ...]]], partition: int
) -> None:
    disk.drop(partition)
    in_memory = PartitionState()
    on_disk = PartitionState(disk.partition(partition))
    for key, number, live, agency, codes in stream:
        v = version(key, number, live=live, agency=agency, codes=codes)
        assert on_disk.apply(v) == in_memory.apply(v)
    assert sorted(on_disk.records.values()) == sorted(in_memory.records.values())
    for key in ("r1", "r2", "r3", "r4", "r5", "r6"):
        assert on_disk.records.get(key) == in_memory.records.get(key)
    assert +on_disk.by_code == +in_memory.by_code
    assert (on_disk.live, on_disk.multi_agency) == (in_memory.live, in_memory.multi_agency)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(changes, st.integers(0, 300), st.randoms(use_true_random=False))
def test_batches_merged_on_disk_give_the_versions_applied_one_by_one(
    disk: Disk,
    stream: list[tuple[str, int, bool, str, tuple[str, ...]]],
    partition: int,
    rnd: random.Random,
) -> None:
    """A recovery merges each changelog batch in one read and one write (``merge``):
    batches in any order, twice over, give what applying each version once gives."""
    disk.drop(partition)
    versions = [
        version(key, number, live=live, agency=agency, codes=codes)
        for key, number, live, agency, codes in stream
    ]
    applied = applied_once(versions)
    shuffled = twice_shuffled(versions, rnd)
    merged = PartitionState(disk.partition(partition))
    while shuffled:
        size = rnd.randint(1, 10)
        merged.merge(shuffled[:size])
        shuffled = shuffled[size:]
    assert sorted(merged.records.values()) == sorted(applied.records.values())
    assert +merged.by_code == +applied.by_code
    assert +merged.by_basis == +applied.by_basis
    assert (merged.live, merged.multi_agency) == (applied.live, applied.multi_agency)
    assert {s: +c for s, c in merged.agencies_of.items()} == {
        s: +c for s, c in applied.agencies_of.items()
    }


def test_one_batch_with_a_correction_a_withdrawal_and_a_replay(tmp_path: Path) -> None:
    """Counted by hand: r1 corrected to cyberbullying, r2 withdrawn, r3 sent again
    under a higher version with the same content, r4 new for a second agency."""
    disk = Disk(tmp_path / "records")
    state = PartitionState(disk.partition(0))
    state.merge([version("r1"), version("r2"), version("r3", codes=("CYBERBULLYING",))])
    state.merge(
        [
            version("r2", 2, live=False),
            version("r1", 2, codes=("CYBERBULLYING",)),
            version("r3", 5, codes=("CYBERBULLYING",)),
            version("r1", 1),  # older: changes nothing
            version("r4", agency="police"),
        ]
    )
    assert dict(+state.by_code) == {"CYBERBULLYING": 2, "GROOMING": 1}
    assert (state.live, state.multi_agency) == (3, 1)
    assert state.records.get("r3") == version("r3", 5, codes=("CYBERBULLYING",))
    assert state.records.get("r2") == version("r2", 2, live=False)
    disk.close()


def test_partitions_apart_and_dropped_when_they_leave(tmp_path: Path) -> None:
    disk = Disk(tmp_path / "records")
    state = WorkerState(disk=disk)
    for number in (1, 2, 256):
        state.partition(number).apply(version(f"r{number}", number))
    assert [list(state.partitions[n].records.values()) for n in (1, 2, 256)] == [
        [version("r1", 1)],
        [version("r2", 2)],
        [version("r256", 256)],
    ]
    state.keep_only({2})
    assert list(disk.partition(1).values()) == [] == list(disk.partition(256).values())
    assert list(disk.partition(2).values()) == [version("r2", 2)]
    disk.close()


def test_a_new_run_starts_empty(tmp_path: Path) -> None:
    """The disk is scratch: a worker rebuilds from the changelog, never from it."""
    first = Disk(tmp_path / "records")
    first.partition(0)["r1"] = version("r1")
    first.close()
    second = Disk(tmp_path / "records")
    assert list(second.partition(0).values()) == [] and second.partition(0).get("r1") is None
    second.close()
