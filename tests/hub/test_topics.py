from __future__ import annotations

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from hub.ops.topics import apply_topics, declared_topics
from hub.settings import HubSettings


def test_apply_creates_then_changes_nothing(hub_settings: HubSettings) -> None:
    specs = declared_topics(hub_settings)
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
    case_topics = [s for s in declared_topics(hub_settings) if ".cases." in f".{s.name}"]
    assert len(case_topics) == len(hub_settings.agencies)
    assert {s.partitions for s in case_topics} == {hub_settings.case_partitions}
