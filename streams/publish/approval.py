"""The second person of a two-person release: ``hub release list``, ``approve`` and
``reject`` (``streams.publish.staging`` says how releases come to be staged).

Only a principal listed under the agreement's ``approval.approvers`` may decide,
and never the one that staged the release (the publisher's, or the operator's who
forced it): the broker authenticates every principal, and ACLs let only the
approvers write the staged-releases topic besides the publisher.

Approving publishes the release as one transaction of the approver's: the cells
on the publication topic, the release's ``PUBLISHED`` entry on the audit trail
(its principal the approver's, ``staged_by`` the stager's) and the staged record
marked ``APPROVED``. Readers (read_committed) see all of it or none of it, so an
approver killed at any point has published the release once or not at all, and
running ``approve`` again then publishes it, or says it was approved. Before
sending, the cells are checked again against everything the trends topic holds
now (``hub.linked``): a release approved after others were published hides what
they would let a reader work out. A release whose period has been published
since it was staged is refused: the publisher stages the next revision instead.

Rejecting marks the staged record ``REJECTED`` with the approver's reason, and
writes a ``REJECTED`` entry, in one transaction; nothing of it is ever published.
The publisher stages the period again only when its cells change.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime

from kafka import KafkaProducer
from kafka.errors import KafkaError

from hub import audit
from hub.agreement.model import Agreement
from hub.audit import checked_reason
from hub.codec import Codec
from hub.errors import BrokerError, PublishError
from hub.kafka.security import client_config, principal_name
from hub.settings import HubSettings
from streams.publish.publisher import (
    Release,
    TrendsLog,
    Who,
    audit_message,
    cell_messages,
    secured_cells,
    staged_entry,
    transact,
)
from streams.publish.staging import Staged, StagedLog

log = logging.getLogger(__name__)


class Approvals:
    """The staged releases, as one approver decides on them."""

    def __init__(self, settings: HubSettings, agreement: Agreement) -> None:
        self.settings = settings
        self.agreement = agreement
        self.principal = principal_name(settings)
        self.codec = Codec("trend_snapshot")
        self._staged: StagedLog | None = None
        self._trends: TrendsLog | None = None
        self._producer: KafkaProducer | None = None

    @property
    def staged(self) -> StagedLog:
        if self._staged is None:
            self._staged = StagedLog(self.settings)
        return self._staged

    @property
    def trends(self) -> TrendsLog:
        if self._trends is None:
            self._trends = TrendsLog(self.settings)
        return self._trends

    def close(self) -> None:
        for log_ in (self._staged, self._trends):
            if log_ is not None:
                log_.close()
        if self._producer is not None:
            self._producer.close(timeout=10)

    def waiting(self) -> list[Staged]:
        """The releases staged and not yet decided, oldest first."""
        self.staged.catch_up()
        return self.staged.waiting()

    def approve(self, id: str, user: str | None = None) -> Release:
        """Publish the staged release `id` (re-checked against the trends topic as it is
        now), audited as approved by this principal and `user` (this process's account)."""
        staged = self._decidable(id, approving=True)
        self.trends.catch_up()
        key = (staged.publication, staged.period[0])
        held = self.trends.periods.get(key)
        if held is not None and held.revision >= staged.revision:
            raise PublishError(
                f"{id} is out of date: revision {held.revision} of that period has been"
                " published since it was staged; the publisher stages the next revision at its"
                " next run (`hub release list`)"
            )
        cells, linked, withheld = secured_cells(
            staged.cells, staged.publication, staged.period, staged.revision,
            self.trends.releases(), self.agreement.disclosure,
        )  # fmt: skip
        withheld = tuple(dict.fromkeys([*staged.withheld, *withheld]))
        now = datetime.now(UTC)
        who = Who(user or audit.account(), self.principal, staged.reason or "")
        published = replace(staged, cells=tuple(cells), withheld=withheld)
        entry = staged_entry(self.settings, self.agreement, published, "PUBLISHED", now, who)
        topic = self.settings.topic(self.agreement.schedule(staged.publication).topic)
        decided = published.decided("APPROVED", self.principal, now, None, entry["id"])
        messages = cell_messages(
            self.codec, self.agreement.partnership, topic, staged.publication, staged.period,
            staged.revision, cells, now,
        )  # fmt: skip
        messages.append(audit_message(audit.audit_topic(self.settings), entry))
        messages.append((self.staged.topic, id.encode(), decided.to_json()))
        transact(self._transactional(), messages, f"the approval of {id}", self._abort)
        suppressed = sum(1 for c in cells if c.suppressed)
        log.info("approved %s: %d cells published, %d suppressed", id, len(cells), suppressed)
        return Release(
            staged.publication,
            staged.period,
            staged.revision,
            len(cells),
            suppressed,
            True,
            staged.forced,
            linked=len(linked) + staged.linked,
            withheld=withheld,
            audit_id=entry["id"],
        )

    def reject(self, id: str, reason: str, user: str | None = None) -> str:
        """Discard the staged release `id` for `reason`; the audit entry's id."""
        reason = checked_reason(reason)
        staged = self._decidable(id, approving=False)
        now = datetime.now(UTC)
        who = Who(user or audit.account(), self.principal, reason)
        entry = staged_entry(self.settings, self.agreement, staged, "REJECTED", now, who)
        decided = staged.decided("REJECTED", self.principal, now, reason, entry["id"])
        messages = [
            audit_message(audit.audit_topic(self.settings), entry),
            (self.staged.topic, id.encode(), decided.to_json()),
        ]
        transact(self._transactional(), messages, f"the rejection of {id}", self._abort)
        log.info("rejected %s", id)
        return str(entry["id"])

    def _decidable(self, id: str, approving: bool) -> Staged:
        """The staged release `id`, when this principal may decide on it now."""
        approvers = self.agreement.approval.approvers
        if self.principal not in approvers:
            listed = ", ".join(approvers) or "nobody"
            raise PublishError(
                f"{self.principal} is not one of the agreement's approvers ({listed}); log in"
                " as one of them (HUB_SASL_USERNAME) to approve or reject a staged release"
            )
        # The transaction first: it aborts any approval still open under the approvers'
        # transactional id, so what is read next holds every decision that can commit
        # before this one (a later one aborts this one instead).
        self._transactional()
        self.staged.catch_up()
        staged = self.staged.get(id)
        if staged is None:
            raise PublishError(f"no staged release {id}; `hub release list` shows them")
        if staged.status != "STAGED":
            raise PublishError(
                f"{id} was {staged.status.lower()} by {staged.decided_by} at"
                f" {staged.decided_at:%Y-%m-%d %H:%M} UTC; nothing was done"
            )
        if approving and staged.staged_by == self.principal:
            raise PublishError(
                f"{id} was staged by {self.principal}: a second person approves it (another of"
                " the agreement's approvers); nothing was published"
            )
        return staged

    def _transactional(self) -> KafkaProducer:
        """The approvers' producer: one transactional id for every approver, so a second
        approval started while one is open aborts it, and only one can commit."""
        if self._producer is None:
            try:
                self._producer = KafkaProducer(
                    bootstrap_servers=self.settings.bootstrap_servers,
                    client_id="hub-release",
                    acks="all",
                    enable_idempotence=True,
                    transactional_id=f"{self.settings.worker_app_id}-release-approval",
                    **client_config(self.settings).kafka_python(),
                )
                self._producer.init_transactions()
            except KafkaError as exc:
                raise BrokerError(
                    f"cannot start a transaction on Kafka at {self.settings.bootstrap_servers}:"
                    f" {exc} (is this principal one of the agreement's approvers, and were"
                    " `hub security acls --apply` run since it was listed?)"
                ) from exc
        return self._producer

    def _abort(self) -> None:
        if self._producer is None:
            return
        try:
            self._producer.abort_transaction()
        except KafkaError as exc:
            log.warning("could not abort the transaction: %s", exc)
