"""Every partner's messy export through the real adapter to the real broker: then every byte
on every topic is searched for the identifiers planted in the inputs."""

from __future__ import annotations

from pathlib import Path

from kafka import KafkaConsumer

from adapters.profile import load_profile, shipped_profiles
from adapters.synth import Child, child_pool
from adapters.synth_export import write_export
from hub.settings import HubSettings
from hub.topics import apply_topics, declared_topics
from tests.conftest import publish_file


def planted(child: Child) -> set[str]:
    born = child.born
    return {
        child.nhs_number,
        f"{child.nhs_number[:3]} {child.nhs_number[3:6]} {child.nhs_number[6:]}",
        child.family_name,
        child.given_name,
        born.isoformat(),
        born.strftime("%d/%m/%Y"),
        born.strftime("%d-%b-%y"),
        child.postcode,
        child.postcode.replace(" ", ""),
    }


def all_bytes(settings: HubSettings) -> bytes:
    topics = [spec.name for spec in declared_topics(settings)]
    consumer = KafkaConsumer(
        *topics,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=8000,
    )
    try:
        return b"\n".join(
            (m.key or b"") + b"\0" + (m.value or b"") + b"".join(v for _, v in m.headers or [])
            for m in consumer
        )
    finally:
        consumer.close()


def test_no_planted_identifier_on_any_topic(hub_settings: HubSettings, tmp_path: Path) -> None:
    profiles = [load_profile(name) for name in shipped_profiles()]
    settings = hub_settings.model_copy(
        update={"agencies": tuple(sorted({p.agency for p in profiles}))}
    )
    apply_topics(settings, declared_topics(settings))
    pool = child_pool(60, seed=9)
    children: dict[str, Child] = {}
    sent = 0
    for seed, profile in enumerate(profiles, start=1):
        path = tmp_path / f"{profile.agency}.export"
        for expected in write_export(profile, 150, seed, pool, path):
            children[expected.child.nhs_number] = expected.child
        sent += publish_file(settings, path, profile.agency, profile.agency).stored
    blob = all_bytes(settings)
    assert sent > 0 and len(blob) > sent * 100  # the events really are there
    leaked = sorted(
        value
        for child in children.values()
        for value in planted(child)
        if value.encode("utf-8") in blob or value.encode("cp1252", "ignore") in blob
    )
    assert leaked == [], f"identifiers reached Kafka: {leaked[:5]}"
