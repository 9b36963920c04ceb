from __future__ import annotations

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from hub.agreement.model import Agreement, Retention, load_agreement
from hub.ops.topics import apply_topics, declared_topics
from hub.settings import HubSettings
from tests.support.agreements import TEST_PARTNERS, agreement_of
from tests.support.processes import hub

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


def test_acks_all_waits_for_two_copies_where_there_are_three() -> None:
    """min.insync.replicas on every topic the hub declares: two with three replicas or
    more (one broker may be down), one with fewer."""
    for replication, wanted in ((1, "1"), (2, "1"), (3, "2"), (5, "2")):
        settings = HubSettings(topic_namespace="ns.", replication_factor=replication)
        specs = declared_topics(settings, example())
        assert {s.config["min.insync.replicas"] for s in specs} == {wanted}, replication


def test_case_topics_carry_the_brokers_time() -> None:
    settings = HubSettings(topic_namespace="ns.")
    specs = {s.name: s for s in declared_topics(settings, example())}
    for name in ("ns.cases.camhs", "ns.deferred.cases"):
        assert specs[name].config["message.timestamp.type"] == "LogAppendTime"


def test_partitions_are_never_added_under_keyed_data(hub_settings: HubSettings) -> None:
    specs = declared_topics(hub_settings, agreement_of(hub_settings))
    apply_topics(hub_settings, specs)
    more = hub_settings.model_copy(update={"case_partitions": hub_settings.case_partitions + 2})
    result = hub(more, "topics", "apply")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert (
        f"has {hub_settings.case_partitions} partitions and"
        f" {hub_settings.case_partitions + 2} are declared" in result.stderr
    )
    assert f"Set HUB_CASE_PARTITIONS back to {hub_settings.case_partitions}" in result.stderr
    admin = KafkaAdminClient(bootstrap_servers=hub_settings.bootstrap_servers)
    try:
        (described,) = admin.describe_topics([hub_settings.case_topic(TEST_PARTNERS[0])])
        assert len(described["partitions"]) == hub_settings.case_partitions
    finally:
        admin.close()
