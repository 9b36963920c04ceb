"""Forced releases through the running publisher service.

The publisher service keeps the changelog folded into its index between
scheduled times, so it can release a period in the time that period's cells
take. `hub publish --now` therefore asks it, when it runs, instead of
reading and indexing the whole changelog itself:

1. the command sees the service's request group (``<app id>-publisher-requests``)
   with a member, writes a request to the publish-requests topic (one
   partition) and reads that topic from its end for the answers;
2. the service reads requests between scheduled times, within a second of
   their arrival. A request read by its ``accept_by`` time is accepted (an
   answer saying so goes out at once), released as ``Publisher.publish_now``
   does, and answered with the release or the error; only then is it
   committed. One read later is answered as expired and not carried out;
3. the command that sees no acceptance by ``accept_by`` (the service is
   busy with a long scheduled run, or the member it saw had died) computes
   the release itself, as it does when no service runs: the service will not
   carry that request out, so one release is never made twice at once.
A request carries no identifier of a child, only a period, a publication, the
asking account's name and principal, and its reason, for the release's audit
entry (``hub.audit``).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.errors import KafkaError

from hub.audit import account, checked_reason
from hub.errors import BrokerError, PublishError
from hub.kafka.client import admin_client
from hub.kafka.security import client_config, principal_name
from hub.settings import HubSettings
from streams.publish.publisher import Release

log = logging.getLogger(__name__)


#: Seconds the service has to take a request before the asker computes it itself.
ACCEPT_WITHIN = 15.0


def request_group(settings: HubSettings) -> str:
    return f"{settings.worker_app_id}-publisher-requests"


@dataclass(frozen=True)
class Request:
    id: str
    period: str
    publication: str | None
    user: str
    #: The asker's reason and Kafka principal, for the release's audit entry.
    reason: str
    principal: str
    accept_by: float  # epoch seconds: read later, the request is not carried out
    deadline: float  # epoch seconds: the asker stops waiting for the answer then
    wait: float  # seconds to wait for the stream workers to catch up

    def to_bytes(self) -> bytes:
        return json.dumps({"type": "request", **self.__dict__}).encode()


def release_to_json(release: Release) -> dict[str, Any]:
    return {
        "publication": release.publication,
        "period": [release.period[0].isoformat(), release.period[1].isoformat()],
        "revision": release.revision,
        "cells": release.cells,
        "suppressed": release.suppressed,
        "changed": release.changed,
        "forced": release.forced,
        "linked": release.linked,
        "withheld": [list(pair) for pair in release.withheld],
        "audit_id": release.audit_id,
        "staged_id": release.staged_id,
    }


def release_from_json(data: dict[str, Any]) -> Release:
    start, end = (date.fromisoformat(d) for d in data["period"])
    return Release(
        publication=data["publication"],
        period=(start, end),
        revision=data["revision"],
        cells=data["cells"],
        suppressed=data["suppressed"],
        changed=data["changed"],
        forced=data["forced"],
        linked=data["linked"],
        withheld=tuple((m, d) for m, d in data["withheld"]),
        audit_id=str(data.get("audit_id", "")),
        staged_id=str(data.get("staged_id", "")),
    )


def _producer(settings: HubSettings, client_id: str) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=client_id,
        acks="all",
        **client_config(settings).kafka_python(),
    )


class RequestQueue:
    """The service's side: requests as they arrive, answered in order."""

    def __init__(self, settings: HubSettings) -> None:
        self.topic = settings.publish_requests_topic
        self.partition = TopicPartition(self.topic, 0)
        try:
            self._consumer = KafkaConsumer(
                self.topic,
                bootstrap_servers=settings.bootstrap_servers,
                client_id="hub-publisher-requests",
                group_id=request_group(settings),
                enable_auto_commit=False,
                auto_offset_reset="latest",
                **client_config(settings).kafka_python(),
            )
            self._producer = _producer(settings, "hub-publisher-answers")
        except KafkaError as exc:
            raise BrokerError(f"cannot read {self.topic}: {exc}; run `hub topics apply`") from exc
        self._waiting: list[tuple[Request, int]] = []

    def next(self, timeout: float) -> Request | None:
        """The next request, waiting at most `timeout` seconds; None if none came."""
        if not self._waiting:
            polled = self._consumer.poll(timeout_ms=int(timeout * 1000), max_records=20)
            for records in polled.values():
                for record in records:
                    request = _request(record.value)
                    if request is not None:
                        self._waiting.append((request, record.offset))
                    else:
                        self._commit(record.offset)
        if not self._waiting:
            return None
        return self._waiting[0][0]

    def accept(self, request: Request) -> None:
        """Tell the asker the request is being carried out."""
        self._send({"type": "accepted", "id": request.id})

    def _send(self, body: dict[str, Any]) -> None:
        self._producer.send(self.topic, json.dumps(body).encode(), partition=0).get(timeout=30)

    def answer(self, request: Request, release: Release | None, error: str | None) -> None:
        """Send the answer, then commit the request (a crash between the two answers it
        again: a release that changed nothing is sent as unchanged)."""
        body: dict[str, Any] = {"type": "answer", "id": request.id}
        if release is not None:
            body["release"] = release_to_json(release)
        else:
            body["error"] = error
        self._send(body)
        _, offset = self._waiting.pop(0)
        self._commit(offset)

    def _commit(self, offset: int) -> None:
        self._consumer.commit({self.partition: OffsetAndMetadata(offset + 1, "", -1)})

    def close(self) -> None:
        self._consumer.close()
        self._producer.close()


def _request(value: bytes | None) -> Request | None:
    try:
        data = json.loads(value or b"")
        if data.get("type") != "request":
            return None
        return Request(
            id=str(data["id"]),
            period=str(data["period"]),
            publication=None if data["publication"] is None else str(data["publication"]),
            user=str(data["user"]),
            reason=str(data.get("reason", "")),
            principal=str(data.get("principal", "unknown")),
            accept_by=float(data["accept_by"]),
            deadline=float(data["deadline"]),
            wait=float(data["wait"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("ignored a message on the publish-requests topic that is not a request")
        return None


def service_running(settings: HubSettings) -> bool:
    """True when a publisher service is reading requests (its group has a member)."""
    admin = admin_client(settings, "hub-publish-now")
    try:
        group = request_group(settings)
        described = admin.describe_groups([group])
    except KafkaError:
        return False
    finally:
        admin.close()
    members = described.get(group, {}).get("members", [])
    return bool(members)


def ask(
    settings: HubSettings,
    period: str,
    publication: str | None,
    wait: float,
    reason: str,
    accept_within: float = ACCEPT_WITHIN,
) -> Release | None:
    """The running service's release of `period`; None when no service is running or
    it did not accept the request within `accept_within` seconds.

    Raises `PublishError` with the service's error, or when it accepted the request
    but did not answer in time (it may still release the period)."""
    if not service_running(settings):
        return None
    topic = settings.publish_requests_topic
    partition = TopicPartition(topic, 0)
    request = Request(
        id=uuid.uuid4().hex,
        period=period,
        publication=publication,
        user=account(),
        reason=checked_reason(reason),
        principal=principal_name(settings),
        accept_by=time.time() + accept_within,
        deadline=time.time() + accept_within + wait + 30,
        wait=wait,
    )
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id="hub-publish-now",
        enable_auto_commit=False,
        **client_config(settings).kafka_python(),
    )
    producer = _producer(settings, "hub-publish-now")
    try:
        consumer.assign([partition])
        consumer.seek_to_end(partition)
        consumer.position(partition)  # fixed before the request is sent
        producer.send(topic, request.to_bytes(), partition=0).get(timeout=30)
        accepted = False
        while time.time() < (request.deadline if accepted else request.accept_by + 2):
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    kind, answer = _answer(record.value, request.id)
                    accepted = accepted or kind == "accepted"
                    if answer is not None:
                        return answer
        if not accepted:
            log.warning(
                "the publisher service did not take the request within %.0f s (busy, or"
                " stopped); computing the release here",
                accept_within,
            )
            return None
        raise PublishError(
            f"the publisher service did not answer within {wait + 30:.0f} s; it may still"
            " release the period (see its log); is it stuck waiting for the stream workers?"
        )
    finally:
        consumer.close()
        producer.close()


def _answer(value: bytes | None, id: str) -> tuple[str | None, Release | None]:
    """(the message's type if it answers request `id`, the release it carries)."""
    try:
        data = json.loads(value or b"")
    except ValueError:
        return None, None
    if not isinstance(data, dict) or data.get("id") != id:
        return None, None
    if data.get("type") != "answer":
        return data.get("type"), None
    if "release" in data:
        return "answer", release_from_json(data["release"])
    raise PublishError(str(data.get("error")))
