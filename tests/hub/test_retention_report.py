"""`hub retention report` on the real broker: every topic of the hub with the age of the
oldest message on it, against the agreement; a topic configured otherwise is named with
the command that fixes it."""

from __future__ import annotations

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from hub.settings import HubSettings
from tests.support.agreements import agreement_of
from tests.support.messages import produce
from tests.support.processes import hub


def rows(stdout: str) -> dict[str, str]:
    return {line.split("  ")[0]: line for line in stdout.splitlines()[1:]}


def test_every_topic_is_reported_against_the_agreement(topics: HubSettings) -> None:
    settings = topics
    produce(settings, [(settings.case_topic("camhs"), b"k", b"an event")])
    report = hub(settings, "retention", "report")
    assert report.returncode == 0, report.stdout + report.stderr
    shown = rows(report.stdout)
    days = agreement_of(settings).retention.case_events_days
    camhs = shown[f"topic {settings.case_topic('camhs')}"]
    assert camhs.split()[-1] == "within" and f" {days} " in camhs, camhs
    police = shown[f"topic {settings.case_topic('police')}"]
    assert " - " in police and police.rstrip().endswith("within"), police  # empty
    assert shown[f"topic {settings.topic('partnership.audit.v1')}"].split()[-2] == "kept"
    changelog = f"topic {settings.worker_app_id}-record-versions-changelog"
    assert "no such topic" in shown[changelog]

    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        resource = ConfigResource(
            ConfigResourceType.TOPIC, settings.case_topic("police"), {"retention.ms": "86400000"}
        )
        admin.alter_configs([resource])
    finally:
        admin.close()
    report = hub(settings, "retention", "report")
    police = rows(report.stdout)[f"topic {settings.case_topic('police')}"]
    assert "the topic keeps data 1 days: run `hub topics apply`" in police, police
