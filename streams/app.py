"""The Faust app: consume every agency topic, apply versions (replays, corrections,
withdrawals) per record, count current records per risk code.

Agency topics share one partition count and are keyed by subject
pseudonym, so the dedup table (changelog-backed, partitioned like its source
topics) sees every version of a record on one partition.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import faust
from faust.types import EventT, StreamT

from hub.codec import Codec
from hub.errors import CodecError
from hub.settings import HubSettings
from streams.counting import RiskCounts, apply_event
from streams.metrics import WorkerMetrics

log = logging.getLogger(__name__)


@dataclass
class Worker:
    app: faust.App
    counts: RiskCounts


def broker_url(bootstrap: str) -> str:
    return ";".join(f"kafka://{server.strip()}" for server in bootstrap.split(","))


def create_app(settings: HubSettings, metrics: WorkerMetrics, counts: RiskCounts) -> Worker:
    app = faust.App(
        settings.worker_app_id,
        broker=broker_url(settings.bootstrap_servers),
        store=settings.store,
        datadir=str(settings.worker_data),
        autodiscover=False,
        web_enabled=False,
        topic_partitions=settings.case_partitions,
        topic_replication_factor=settings.replication_factor,
        # A standby copy would double-count on a scrape; recovery rebuilds from the changelog.
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=max(1.0, settings.session_timeout / 10),
    )
    codec = Codec("case_event")
    source = app.topic(
        *(settings.case_topic(agency) for agency in settings.agencies),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    records = app.Table(
        "case-records",
        default=None,
        partitions=settings.case_partitions,
        key_type=str,
    )

    async def rebuild() -> None:
        actives = app.assignor.assigned_actives()
        partitions = {tp.partition for tp in actives}
        counts.rebuild(list(records.values()), partitions)
        log.info("counts rebuilt for partitions %s", sorted(partitions))

    records.on_recover(rebuild)

    async def count(stream: StreamT[bytes]) -> AsyncIterator[None]:
        event: EventT[bytes]
        async for event in stream.events():
            metrics.consumed.inc()
            try:
                record = codec.decode(event.value)
            except CodecError as exc:
                message = event.message
                metrics.undecodable.inc()
                log.warning(
                    "skipped %s[%s]@%s: %s", message.topic, message.partition, message.offset, exc
                )
                continue
            key = record["record_key"]
            partition = event.message.partition
            change = apply_event(records.get(key), partition, record)
            if change.store is None:
                (metrics.duplicates if change.kind == "duplicate" else metrics.stale).inc()
                continue
            records[key] = change.store  # the one durable write for this event
            if change.retract is not None:
                counts.remove(partition, change.retract["codes"], change.retract["basis"])
            if change.add is not None:
                counts.add(partition, change.add["codes"], change.add["basis"])
            if change.kind == "correction":
                metrics.corrections.inc()
            elif change.kind == "withdrawal":
                metrics.withdrawals.inc()
            yield None

    app.agent(source, name="count-risk-codes")(count)
    return Worker(app, counts)
