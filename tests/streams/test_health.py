"""Health metrics that tell the truth right after a restart, on the real broker: lag from
the group's committed offsets (not the whole topic), and no live count served while the
worker is still reading its state back (rather than a count of 0)."""

from __future__ import annotations

import random
import time
from datetime import date

from hub.kafka.client import admin_client
from hub.ops.topics import current_config
from hub.settings import HubSettings
from tests.support.agreements import partner_ids
from tests.support.messages import total, wait_for
from tests.support.processes import WorkerProcess
from tests.support.scenario import Scenario, send


def test_lag_and_counts_right_after_a_restart(topics: HubSettings, worker: WorkerProcess) -> None:
    settings = topics
    rnd = random.Random(9)
    scenario = Scenario.create(partner_ids(settings), children=40, seed=9)
    first = scenario.new_records(150, date(2026, 6, 1), date(2026, 9, 30))
    before = send(settings, first, rnd, replay=0.1)

    worker.start()
    samples = wait_for(worker, lambda s: s.get("hub_events_counted") == len(first), "count")
    assert samples["hub_worker_recovering"] == 0
    # Every event committed: nothing behind, for the group and for this worker.
    samples = wait_for(worker, lambda s: total(s, "hub_consumer_group_lag") == 0, "commit")
    assert total(samples, "hub_consumer_lag") == 0
    worker.stop()

    second = scenario.new_records(40, date(2026, 7, 1), date(2026, 10, 31))
    after = send(settings, second, rnd, replay=0.0)
    assert before > after

    worker.start()
    seen: list[dict[str, float]] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        samples = worker.metrics()
        seen.append(samples)
        if not samples["hub_worker_recovering"] and samples.get("hub_events_counted") == len(
            scenario.latest
        ):
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"never caught up: {seen[-1]}")

    # From the first scrape: only what arrived while the worker was down is behind.
    assert total(seen[0], "hub_consumer_group_lag") == after
    for samples in seen:
        assert total(samples, "hub_consumer_group_lag") <= after
        assert total(samples, "hub_consumer_lag") <= after  # this worker's share
        if samples["hub_worker_recovering"]:
            # Reading state back: no count rather than a wrong one.
            assert "hub_events_counted" not in samples
        else:
            assert samples["hub_events_counted"] >= len(first)
    assert seen[0]["hub_worker_recovering"] == 1  # the start is reported as recovery
    wait_for(worker, lambda s: total(s, "hub_consumer_group_lag") == 0, "caught up")

    # The changelog Faust created carries the hub's min.insync.replicas explicitly
    # (kafka-python lists only configs set on the topic, not the broker's defaults).
    admin = admin_client(settings, "test-health")
    try:
        changelog = f"{settings.worker_app_id}-record-versions-changelog"
        config = current_config(admin, changelog)
    finally:
        admin.close()
    assert config.get("min.insync.replicas") == "1"  # replication factor 1 here
    assert config.get("cleanup.policy") == "compact"
