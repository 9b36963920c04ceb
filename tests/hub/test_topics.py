from __future__ import annotations

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from hub.agreement.model import Agreement, Retention, load_agreement
from hub.ops.topics import apply_topics, declared_topics
from hub.settings import HubSettings
from tests.support.agreements import TEST_PARTNERS, agreement_of

_DAY_MS = 24 * 60 * 60 * 1000


def test_apply_creates_then_changes_nothing(hub_settings: HubSettings) -> None:
    specs = declared_topics(hub_settings, agreement_of(hub_settings))
    first = apply_topics(hub_settings, specs)
    assert sorted(first.created) == sorted(s.name for s in specs)
    second = apply_topics(hub_settings, specs)
    assert second.created == [] and second.updated == []
    assert sorted(second.unchanged) == sorted(s.name for s in specs)

    admin = KafkaAdminClient(bootstrap_servers=hub_settings.bootstrap_servers)
    try:
        for spec in specs:
            (described,) = admin.describe_topics([spec.name])
            assert len(described["partitions"]) == spec.partitions
        trends = hub_settings.trends_topic
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, trends)])
        assert configs["topic"][trends]["cleanup.policy"]["value"] == "compact"
        # Drift is repaired: change a config by hand, apply puts it back.
        admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, trends, {"cleanup.policy": "delete"})]
        )
        third = apply_topics(hub_settings, specs)
        assert third.updated == [trends]
    finally:
        admin.close()


def test_agency_topics_share_one_partition_count(hub_settings: HubSettings) -> None:
    declared = declared_topics(hub_settings, agreement_of(hub_settings))
    case_topics = [s for s in declared if ".cases." in f".{s.name}"]
    assert [s.name for s in case_topics] == [hub_settings.case_topic(a) for a in TEST_PARTNERS]
    assert {s.partitions for s in case_topics} == {hub_settings.case_partitions}


def example(retention: Retention | None = None) -> Agreement:
    agreement = load_agreement(HubSettings().agreement)
    return agreement if retention is None else agreement.model_copy(update={"retention": retention})


def test_the_agreements_partners_and_publications_are_the_declared_topics() -> None:
    settings = HubSettings(topic_namespace="ns.")
    agreement = example()
    names = [spec.name for spec in declared_topics(settings, agreement)]
    partners = [f"ns.cases.{p.id}" for p in agreement.partners]
    # Both publications name one topic: it is declared once.
    assert names == [
        *partners,
        "ns.deferred.cases",
        "ns.publish.requests",
        "ns.partnership.trends.v1",
        "ns.partnership.audit.v1",
    ]


def test_retention_comes_from_the_agreement() -> None:
    settings = HubSettings(topic_namespace="ns.")
    specs = {s.name: s for s in declared_topics(settings, example())}
    # The example: case events seven years (2555 days), published trends kept.
    for name in ("ns.cases.camhs", "ns.deferred.cases"):
        assert specs[name].config["cleanup.policy"] == "delete"
        assert specs[name].config["retention.ms"] == str(2555 * _DAY_MS)
    trends = specs["ns.partnership.trends.v1"].config
    assert (trends["cleanup.policy"], trends["retention.ms"]) == ("compact", "-1")

    shorter = example(Retention(case_events_days=30, trends_days=400))
    specs = {s.name: s for s in declared_topics(settings, shorter)}
    assert specs["ns.cases.police"].config["retention.ms"] == str(30 * _DAY_MS)
    assert specs["ns.deferred.cases"].config["retention.ms"] == str(30 * _DAY_MS)
    trends = specs["ns.partnership.trends.v1"].config
    assert (trends["cleanup.policy"], trends["retention.ms"]) == (
        "compact,delete",
        str(400 * _DAY_MS),
    )
