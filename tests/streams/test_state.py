"""The worker's per-partition state: versions, retractions, linkage, and the order-free merge."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.state import PartitionState
from tests.support.versions import applied_once, twice_shuffled, version


def test_replay_older_version_correction_and_withdrawal() -> None:
    state = PartitionState()
    assert state.apply(version("r1")) == "new"
    assert state.apply(version("r1")) == "duplicate"
    assert state.apply(version("r1", 2, codes=("CYBERBULLYING",))) == "correction"
    assert state.apply(version("r1", 1)) == "stale"
    assert dict(+state.by_code) == {"CYBERBULLYING": 1}
    assert state.apply(version("r1", 3, live=False)) == "withdrawal"
    assert state.apply(version("r1", 2)) == "stale"  # the tombstone holds
    assert state.live == 0 and dict(+state.by_code) == {}


def test_children_known_to_two_agencies() -> None:
    state = PartitionState()
    state.apply(version("a", agency="camhs"))
    state.apply(version("b", agency="camhs"))
    assert state.multi_agency == 0
    state.apply(version("c", agency="police"))
    state.apply(version("d", agency="police", subject="s2"))
    assert state.multi_agency == 1
    state.apply(version("c", 2, live=False, agency="police"))  # police withdraws its record
    assert state.multi_agency == 0
    state.apply(version("e", agency="police", subject=None))  # no subject: no linkage
    assert state.multi_agency == 0 and state.by_basis["NONE"] == 1


events = st.lists(
    st.tuples(
        st.sampled_from(["r1", "r2", "r3", "r4"]),
        st.integers(1, 4),
        st.booleans(),
        st.sampled_from(["camhs", "police"]),
        st.sampled_from(["s1", "s2", None]),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(events, st.randoms(use_true_random=False))
def test_merge_in_any_order_and_twice_equals_applying_once(
    stream: list[tuple[str, int, bool, str, str | None]], rnd: random.Random
) -> None:
    # Subject is fixed per record key, as an agency's record keeps its child.
    versions = [
        version(k, v, live=live, agency=a, subject={"r1": "s1", "r2": "s1"}.get(k, s))
        for k, v, live, a, s in stream
    ]
    applied = applied_once(versions)
    shuffled = twice_shuffled(versions, rnd)
    merged = PartitionState()
    merged.merge(shuffled)
    assert merged.records == applied.records
    assert +merged.by_code == +applied.by_code
    assert merged.live == applied.live
    assert merged.multi_agency == applied.multi_agency
