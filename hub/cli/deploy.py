"""`hub deploy`: Kubernetes manifests (Strimzi) generated from the agreement."""

from __future__ import annotations

from pathlib import Path

import click

from hub.cli.common import current_agreement, friendly
from hub.settings import HubSettings


@click.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("deploy/k8s"),
    show_default=True,
    help="The folder to write the manifests to (generated files no longer produced are removed).",
)
@click.option(
    "--namespace",
    default="online-risk-hub",
    show_default=True,
    help="The Kubernetes namespace of every resource.",
)
@click.option(
    "--cluster", default="hub", show_default=True, help="The name of the Strimzi Kafka cluster."
)
@click.option(
    "--brokers",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Kafka nodes (controller and broker each); topics are replicated on up to three.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Stream worker pods, at most HUB_CASE_PARTITIONS.",
)
@click.option(
    "--image",
    default=None,
    help="The hub's image (deploy/docker/Dockerfile) [default: online-risk-hub:<version>].",
)
@click.option("--storage", default="100Gi", show_default=True, help="Each Kafka node's volume.")
@click.option(
    "--worker-storage", default="10Gi", show_default=True, help="Each worker's state volume."
)
@click.option(
    "--external",
    type=click.Choice(["none", "loadbalancer", "nodeport", "route", "ingress"]),
    default="loadbalancer",
    show_default=True,
    help="A TLS listener for the agencies' adapters outside the cluster, of this type.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; exit 1 when the files in --out differ from what would be written.",
)
@click.pass_obj
@friendly
def deploy(
    settings: HubSettings,
    out: Path,
    namespace: str,
    cluster: str,
    brokers: int,
    workers: int,
    image: str | None,
    storage: str,
    worker_storage: str,
    external: str,
    check: bool,
) -> None:
    """Write Kubernetes manifests for the agreement at HUB_AGREEMENT: a Strimzi Kafka
    cluster, its topics and users (the ACLs of `hub security acls`), the stream workers,
    the publisher and Prometheus's scrape configuration (docs/deploy.md)."""
    import sys

    from hub.ops.kubernetes import Plan, manifests, write

    agreement = current_agreement()
    options = {"image": image} if image else {}
    plan = Plan(
        namespace=namespace,
        cluster=cluster,
        brokers=brokers,
        workers=workers,
        storage=storage,
        worker_storage=worker_storage,
        external=external,
        **options,
    )
    text = settings.agreement.read_text(encoding="utf-8")
    files = manifests(plan, settings, agreement, text)
    if check:
        stale = [
            name
            for name, content in files.items()
            if not (out / name).is_file() or (out / name).read_text(encoding="utf-8") != content
        ]
        for name in stale:
            click.echo(f"{out / name}: differs from the agreement's manifests", err=True)
        if stale:
            click.echo("run `hub deploy` to regenerate them", err=True)
            sys.exit(1)
        click.echo(f"{out}: {len(files)} files match the agreement")
        return
    for path in write(out, files):
        click.echo(f"wrote {path}")
    click.echo(
        f"{len(files)} files for namespace {namespace}; apply with `kubectl apply -f {out}`"
        " once the Strimzi operator watches the namespace (docs/deploy.md)"
    )


COMMANDS: tuple[click.Command, ...] = (deploy,)
