"""Operating the hub: the local broker, schemas, the agreement, topics, keys, ACLs, the demo."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from hub.cli.common import current_agreement, friendly
from hub.errors import ConfigError
from hub.settings import HubSettings

if TYPE_CHECKING:
    from hub.pseudonymise import KeyRing


# --- broker -------------------------------------------------------------------
@click.group()
def broker() -> None:
    """The local single-node Kafka broker (development and tests only)."""


@broker.command("fetch")
@click.pass_obj
@friendly
def broker_fetch(settings: HubSettings) -> None:
    """Fetch Kafka's jars from Maven Central into the cache (once)."""
    from hub.ops.broker import ensure_artifacts

    artifacts = ensure_artifacts(settings)
    click.echo(f"Kafka {artifacts.version} ready in {artifacts.libs}")


@broker.command("start")
@click.pass_obj
@friendly
def broker_start(settings: HubSettings) -> None:
    """Start the broker and wait until it answers; a no-op when it already runs."""
    from hub.ops.broker import Broker

    b = Broker(settings)
    already = b.pid() is not None
    status = b.start()
    click.echo(("already " if already else "") + status.describe())


@broker.command("stop")
@click.pass_obj
@friendly
def broker_stop(settings: HubSettings) -> None:
    """Stop the broker cleanly and free its ports."""
    from hub.ops.broker import Broker

    stopped = Broker(settings).stop()
    click.echo("broker stopped" if stopped else "broker was not running")


@broker.command("status")
@click.pass_obj
@friendly
def broker_status(settings: HubSettings) -> None:
    """Say whether the broker runs; exit status 0 when it does, 3 when not."""
    from hub.ops.broker import Broker

    status = Broker(settings).status()
    click.echo(status.describe())
    if not status.running:
        sys.exit(3)


# --- schema -------------------------------------------------------------------
@click.group()
def schema() -> None:
    """The Avro schemas in schemas/."""


@schema.command("check")
@click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="A schemas directory; defaults to the shipped one.",
)
def schema_check(root: Path | None) -> None:
    """Check every version of every schema against every earlier one, both directions."""
    from hub.codec import SCHEMAS_DIR
    from hub.schema_check import check, schema_names

    base = root or SCHEMAS_DIR
    pairs, problems = check(base)
    for problem in problems:
        click.secho(f"incompatible: {problem}", fg="red", err=True)
    names = ", ".join(schema_names(base))
    click.echo(f"{names}: {pairs} version pairs checked, {len(problems)} incompatible")
    if problems:
        sys.exit(1)


# --- agreement ----------------------------------------------------------------
@click.group()
def agreement() -> None:
    """The data-sharing agreement (one YAML file)."""


@agreement.command("check")
@click.argument("file", type=click.Path(path_type=Path))
def agreement_check(file: Path) -> None:
    """Report every problem in FILE with its location; exit 1 when there is any."""
    from hub.agreement.model import check_agreement

    problems = check_agreement(file)
    for problem in problems:
        click.secho(problem, fg="red", err=True)
    if problems:
        click.echo(f"{file}: {len(problems)} problem(s)")
        sys.exit(1)
    click.echo(f"{file}: the agreement is valid")


@agreement.command("describe")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option(
    "--format",
    "form",
    type=click.Choice(["markdown", "html"]),
    default="markdown",
    show_default=True,
    help="Markdown, or one self-contained HTML page.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the document here (default: standard output).",
)
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M"]),
    help="The date the next publication dates are worked out from (default: now).",
)
@friendly
def agreement_describe(file: Path, form: str, out: Path | None, as_of: datetime | None) -> None:
    """FILE as a document for the people who sign it: partners and the fields each
    shares, identifiers and their pseudonyms, readers, the timetable in words with its
    next dates, the disclosure rule, retention."""
    from zoneinfo import ZoneInfo

    from hub.agreement.describe import describe, markdown, page
    from hub.agreement.model import load_agreement

    agreement = load_agreement(file)
    zone = ZoneInfo(agreement.timezone)
    now = datetime.now(zone) if as_of is None else as_of.replace(tzinfo=zone)
    blocks = describe(agreement, file, now)
    text = page(blocks) if form == "html" else markdown(blocks)
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"{out}: the agreement of {agreement.partnership}, as {form}")


# --- topics -------------------------------------------------------------------
@click.group()
def topics() -> None:
    """The hub's Kafka topics."""


@topics.command("apply")
@click.pass_obj
@friendly
def topics_apply(settings: HubSettings) -> None:
    """Create missing topics and reset declared configs; safe to run again."""
    from hub.ops.topics import apply_topics, declared_topics

    report = apply_topics(settings, declared_topics(settings, current_agreement()))
    for name in report.created:
        click.echo(f"created {name}")
    for name in report.updated:
        click.echo(f"updated {name}")
    click.echo(f"topics: {report.summary()}")
    _record_agreement(settings)


def _record_agreement(settings: HubSettings) -> None:
    """Put the agreement on the audit trail when it is not the last one recorded there."""
    from hub import audit

    agreement = current_agreement()
    document = agreement.model_dump(mode="json")
    written = audit.record_agreement(settings, agreement.partnership, document, settings.agreement)
    if written is not None:
        changes = written["agreement"]["changes"]
        click.echo(f"agreement {written['agreement']['sha256'][:12]} recorded on the audit trail:")
        for line in changes:
            click.echo(f"  {line}")


# --- retention --------------------------------------------------------------------
@click.group()
def retention() -> None:
    """How old the data every store holds is, against what the agreement allows."""


@retention.command("report")
@click.option(
    "--topics/--no-topics",
    default=True,
    show_default=True,
    help="The hub's topics (needs the operator's access); --no-topics at an agency.",
)
@click.option(
    "--outbox",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="An agency's outbox; default: HUB_OUTBOX when it exists.",
)
@click.option(
    "--quarantine",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="An agency's quarantine reports; default: ./quarantine when it exists.",
)
@click.pass_obj
@friendly
def retention_report(
    settings: HubSettings, topics: bool, outbox: Path | None, quarantine: Path | None
) -> None:
    """Each store, the oldest data it holds, its age in days, what the agreement allows,
    and whether it is within that; exit status 1 when any store holds data past it."""
    from datetime import UTC

    from adapters.runner import local_ages
    from hub.ops.retention import topic_ages

    agreement = current_agreement()
    now = datetime.now(UTC)
    ages = topic_ages(settings, agreement) if topics else []
    outbox = outbox or (settings.outbox if settings.outbox.exists() else None)
    quarantine = quarantine or (Path("quarantine") if Path("quarantine").is_dir() else None)
    ages += local_ages(outbox, quarantine, agreement.retention)
    rows = [("store", "oldest (UTC)", "age (days)", "allowed (days)", "status")]
    rows += [age.row(now) for age in ages]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        click.echo(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[4]
        )
    over = [age.store for age in ages if age.over(now)]
    if over:
        click.echo(f"{len(over)} store(s) hold data past what the agreement allows", err=True)
        sys.exit(1)


# --- keys -----------------------------------------------------------------------
@click.group()
def keys() -> None:
    """Partnership pseudonymisation keys (held by agencies, never by the hub)."""


@keys.command("new")
@click.option(
    "--out", "out", type=click.Path(path_type=Path), required=True, help="The new key file."
)
@click.option("--key-id", default=None, help="Defaults to a random k-xxxxxxxx.")
@click.option(
    "--encrypt", is_flag=True, help="Seal with a passphrase (HUB_KEY_PASSPHRASE, else asked)."
)
@click.pass_obj
@friendly
def keys_new(settings: HubSettings, out: Path, key_id: str | None, encrypt: bool) -> None:
    """Write a new key file, readable by its owner only (0600); never overwrites."""
    from hub.pseudonymise import KeyRing

    ring = KeyRing.generate(key_id)
    _write_keys(settings, out, ring, encrypt)
    click.echo(f"wrote key {ring.current.key_id} to {out}; set HUB_KEY_FILE={out}")


@keys.command("rotate")
@click.option(
    "--key-file",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    help="The agency's current key file.",
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="The rotated key file.")
@click.option("--key-id", default=None, help="The new key's id; defaults to a random k-xxxxxxxx.")
@click.option(
    "--keep",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="How many previous keys stay for linkage across the change.",
)
@click.option(
    "--encrypt", is_flag=True, help="Seal with a passphrase (HUB_KEY_PASSPHRASE, else asked)."
)
@click.option(
    "--agency",
    default=None,
    help="The agency whose adapters use the key file, named on the audit trail.",
)
@click.pass_obj
@friendly
def keys_rotate(
    settings: HubSettings,
    key_file: Path,
    out: Path,
    key_id: str | None,
    keep: int,
    encrypt: bool,
    agency: str | None,
) -> None:
    """Write a key file with a new current key, keeping previous keys and the record secret.
    The rotation (key ids only) goes on the audit trail through the outbox at HUB_OUTBOX,
    with the adapter's next send."""
    from adapters.outbox import audited
    from hub import audit
    from hub.pseudonymise import read_key_file

    before = read_key_file(key_file, settings.passphrase)
    ring = before.rotated(key_id, keep)
    if out.exists():
        raise ConfigError(f"{out} exists; a key file is never overwritten")
    held = [k.key_id for k in ring.keys]
    detail = {
        "agency": agency,
        "key_id": ring.current.key_id,
        "previous_key_id": before.current.key_id,
        "kept_key_ids": held[1:],
        "dropped_key_ids": [k.key_id for k in before.keys if k.key_id not in held],
    }
    partnership = current_agreement().partnership
    audited(settings, audit.entry("KEY_ROTATION", partnership, settings, detail))
    _write_keys(settings, out, ring, encrypt)
    kept = ", ".join(held[1:]) or "none"
    click.echo(f"wrote {out}: current key {ring.current.key_id}, previous kept: {kept}")
    click.echo(
        f"the rotation is in the outbox {settings.outbox}; it reaches the audit trail with"
        " the next `hub adapter run` or `hub adapter drain`"
    )


def _write_keys(settings: HubSettings, out: Path, ring: KeyRing, encrypt: bool) -> None:
    from hub.pseudonymise import write_key_file

    if out.exists():
        raise ConfigError(f"{out} exists; a key file is never overwritten")
    passphrase = None
    if encrypt:
        passphrase = settings.passphrase or click.prompt(
            "Passphrase", hide_input=True, confirmation_prompt=True
        )
    write_key_file(out, ring, passphrase)


# --- security -------------------------------------------------------------------
@click.group()
def security() -> None:
    """Kafka principals: ACLs from the agreement, SCRAM credentials (run as a super user);
    the partnership's TLS CA and certificates."""


@security.command("acls")
@click.option(
    "--apply",
    "apply_",
    is_flag=True,
    help="Make them the cluster's: create the missing ones, remove the hub's others.",
)
@click.pass_obj
@friendly
def security_acls(settings: HubSettings, apply_: bool) -> None:
    """List the ACLs the agreement implies; with --apply, reconcile the cluster with them
    (allow rules on other resources than the hub's are left alone)."""
    from hub.ops.acls import apply_acls, derived_acls, rule_text

    agreement = current_agreement()
    for grant in derived_acls(agreement, settings):
        click.echo(str(grant))
    if apply_:
        from hub import audit

        changes = apply_acls(settings, agreement)
        for rule in changes.removed:
            click.echo(f"removed: {rule_text(rule)}", err=True)
        click.echo(f"{changes.summary()} on {settings.bootstrap_servers}", err=True)
        detail = {
            "created": sorted(rule_text(rule) for rule in changes.created),
            "removed": sorted(rule_text(rule) for rule in changes.removed),
            "agreement_sha256": audit.file_sha256(settings.agreement),
        }
        audit.write(settings, audit.entry("ACL_APPLY", agreement.partnership, settings, detail))
        _record_agreement(settings)


@security.command("set-password")
@click.argument("user")
@click.pass_obj
@friendly
def security_set_password(settings: HubSettings, user: str) -> None:
    """Store USER's SCRAM credential; the password is read from standard input."""
    from hub.ops.acls import set_password

    if sys.stdin.isatty():
        password = click.prompt(f"password for {user}", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\n")
    set_password(settings, user, password)
    click.echo(f"credential of User:{user} stored ({settings.sasl_mechanism})", err=True)


@security.command("ca")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Its directory.")
@friendly
def security_ca(out: Path) -> None:
    """Write a new partnership CA: OUT/ca.pem (every client's and broker's truststore) and
    OUT/ca.key (unencrypted, 0600: keep the directory private). Never overwrites."""
    from hub.ops.tls import create_ca

    cert = create_ca(out)
    click.echo(f"wrote the CA certificate {cert} and its key {out / 'ca.key'}")


@security.command("cert")
@click.option(
    "--ca", "ca_dir", type=click.Path(path_type=Path), required=True, help="The CA's directory."
)
@click.option("--name", required=True, help="The CN: a broker's name or a client's principal.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Its directory.")
@click.option(
    "--host",
    "hosts",
    multiple=True,
    help="A host name or IP address the broker serves (repeatable); makes a broker certificate.",
)
@click.option("--broker", is_flag=True, help="A broker certificate for 127.0.0.1 and localhost.")
@friendly
def security_cert(ca_dir: Path, name: str, out: Path, hosts: tuple[str, ...], broker: bool) -> None:
    """Write OUT/NAME.pem (0600): a new unencrypted key, its certificate signed by the CA,
    and the CA certificate; a broker's PEM keystore or a client's certificate file."""
    from hub.ops.tls import hosts_of, issue_certificate, read_certificates

    written = issue_certificate(ca_dir, name, out, hosts, server=broker or bool(hosts))
    served = ", ".join(hosts_of(read_certificates(written)[0]))
    what = f"a broker certificate for {served}" if served else f"a client certificate, CN={name}"
    click.echo(f"wrote {written}: {what}")


@click.command()
@click.pass_obj
@friendly
def demo(settings: HubSettings) -> None:
    """Broker, topics, worker and simulated agencies, until Ctrl-C."""
    from hub.cli.demo import run_demo

    run_demo(settings, current_agreement())


#: The commands `hub` gets from this module.
COMMANDS: tuple[click.Command, ...] = (
    broker,
    schema,
    agreement,
    topics,
    retention,
    keys,
    security,
    demo,
)
