"""The `hub` command. Settings are built here, once, and passed down."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import click

from hub.errors import ConfigError, HubError
from hub.settings import HubSettings

if TYPE_CHECKING:
    from hub.agreement.model import Agreement
    from hub.pseudonymise import KeyRing

P = ParamSpec("P")
R = TypeVar("R")


def _friendly(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a HubError into a one-paragraph message and exit status 1."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except HubError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(1)

    return wrapper


class _AgreementHolder:
    """The agreement at HUB_AGREEMENT, loaded once per process, when a command first asks
    for it: a command that does not use it runs whatever the file holds."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._agreement: Agreement | None = None

    def get(self) -> Agreement:
        """The agreement; a ConfigError naming every problem when the file is bad."""
        if self._agreement is None:
            from hub.agreement.model import load_agreement

            self._agreement = load_agreement(self.path)
        return self._agreement


_AGREEMENT = "hub.agreement"


def _agreement() -> Agreement:
    """The process's agreement, beside its settings (see `main`). Call it inside a
    `_friendly` command, so a bad file is reported as an error, not a traceback."""
    holder: _AgreementHolder = click.get_current_context().meta[_AGREEMENT]
    return holder.get()


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """The online-risk data-sharing hub. Settings come from HUB_* environment variables,
    the data-sharing agreement from the file HUB_AGREEMENT names."""
    ctx.obj = settings = HubSettings()
    ctx.meta[_AGREEMENT] = _AgreementHolder(settings.agreement)


# --- broker -------------------------------------------------------------------
@main.group()
def broker() -> None:
    """The local single-node Kafka broker (development and tests only)."""


@broker.command("fetch")
@click.pass_obj
@_friendly
def broker_fetch(settings: HubSettings) -> None:
    """Fetch Kafka's jars from Maven Central into the cache (once)."""
    from hub.ops.broker import ensure_artifacts

    artifacts = ensure_artifacts(settings)
    click.echo(f"Kafka {artifacts.version} ready in {artifacts.libs}")


@broker.command("start")
@click.pass_obj
@_friendly
def broker_start(settings: HubSettings) -> None:
    """Start the broker and wait until it answers; a no-op when it already runs."""
    from hub.ops.broker import Broker

    b = Broker(settings)
    already = b.pid() is not None
    status = b.start()
    click.echo(("already " if already else "") + status.describe())


@broker.command("stop")
@click.pass_obj
@_friendly
def broker_stop(settings: HubSettings) -> None:
    """Stop the broker cleanly and free its ports."""
    from hub.ops.broker import Broker

    stopped = Broker(settings).stop()
    click.echo("broker stopped" if stopped else "broker was not running")


@broker.command("status")
@click.pass_obj
@_friendly
def broker_status(settings: HubSettings) -> None:
    """Say whether the broker runs; exit status 0 when it does, 3 when not."""
    from hub.ops.broker import Broker

    status = Broker(settings).status()
    click.echo(status.describe())
    if not status.running:
        sys.exit(3)


# --- schema -------------------------------------------------------------------
@main.group()
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
@main.group()
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


# --- topics -------------------------------------------------------------------
@main.group()
def topics() -> None:
    """The hub's Kafka topics."""


@topics.command("apply")
@click.pass_obj
@_friendly
def topics_apply(settings: HubSettings) -> None:
    """Create missing topics and reset declared configs; safe to run again."""
    from hub.ops.topics import apply_topics, declared_topics

    report = apply_topics(settings, declared_topics(settings, _agreement()))
    for name in report.created:
        click.echo(f"created {name}")
    for name in report.updated:
        click.echo(f"updated {name}")
    click.echo(f"topics: {report.summary()}")


# --- keys -----------------------------------------------------------------------
@main.group()
def keys() -> None:
    """Partnership pseudonymisation keys (held by agencies, never by the hub)."""


@keys.command("new")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True)
@click.option("--key-id", default=None, help="Defaults to a random k-xxxxxxxx.")
@click.option(
    "--encrypt", is_flag=True, help="Seal with a passphrase (HUB_KEY_PASSPHRASE, else asked)."
)
@click.pass_obj
@_friendly
def keys_new(settings: HubSettings, out: Path, key_id: str | None, encrypt: bool) -> None:
    """Write a new key file, readable by its owner only (0600); never overwrites."""
    from hub.pseudonymise import KeyRing

    ring = KeyRing.generate(key_id)
    _write_keys(settings, out, ring, encrypt)
    click.echo(f"wrote key {ring.current.key_id} to {out}; set HUB_KEY_FILE={out}")


@keys.command("rotate")
@click.option("--key-file", type=click.Path(exists=True, path_type=Path), required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--key-id", default=None)
@click.option(
    "--keep",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="How many previous keys stay for linkage across the change.",
)
@click.option("--encrypt", is_flag=True)
@click.pass_obj
@_friendly
def keys_rotate(
    settings: HubSettings, key_file: Path, out: Path, key_id: str | None, keep: int, encrypt: bool
) -> None:
    """Write a key file with a new current key, keeping previous keys and the record secret."""
    from hub.pseudonymise import read_key_file

    ring = read_key_file(key_file, settings.passphrase).rotated(key_id, keep)
    _write_keys(settings, out, ring, encrypt)
    kept = ", ".join(k.key_id for k in ring.keys[1:]) or "none"
    click.echo(f"wrote {out}: current key {ring.current.key_id}, previous kept: {kept}")


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


# --- adapter --------------------------------------------------------------------
@main.group()
def adapter() -> None:
    """Agency-side adapter: pseudonymise, minimise and publish an export."""


@adapter.command("run")
@click.option(
    "--profile",
    "profile_name",
    required=True,
    help="A shipped profile (e.g. camhs) or a profile YAML file.",
)
@click.option("--agency", default=None, help="The agency id; defaults to the profile's.")
@click.option(
    "--watch",
    "watch_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Process files dropped into this folder until Ctrl-C.",
)
@click.option(
    "--sql",
    "sql_url",
    default=None,
    help="Read a database through SQLAlchemy, e.g. postgresql+psycopg://user@host/db.",
)
@click.option("--query", default=None, help="With --sql: the SELECT (or view) to read.")
@click.option(
    "--watermark",
    default=None,
    help="With --sql: a column that only grows (e.g. updated_at); runs resume there.",
)
@click.option(
    "--serve",
    "serve_port",
    type=int,
    default=None,
    help="Accept pushed JSON events on this port (POST /events, bearer tokens).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="With --serve.")
@click.option(
    "--tokens",
    "tokens_file",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='With --serve: a JSON file {"<bearer token>": "<provider>"}.',
)
@click.option(
    "--quarantine",
    type=click.Path(path_type=Path),
    default=Path("quarantine"),
    show_default=True,
    help="Where rejected-row reports stay (on this machine).",
)
@click.option(
    "--drain-timeout",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds to keep retrying Kafka before leaving events in the outbox.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0),
    default=None,
    help="Serve Prometheus /metrics on this port; 0: off. Default: HUB_ADAPTER_METRICS_PORT"
    " (9466) with --watch or --serve, off for a one-shot run.",
)
@click.option(
    "--accept-withdrawals",
    is_flag=True,
    help="Confirm that the records a full export no longer lists were deleted, when the"
    " adapter held their withdrawal back (too many, an empty or a damaged file).",
)
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
@_friendly
def adapter_run(
    settings: HubSettings,
    profile_name: str,
    agency: str | None,
    watch_dir: Path | None,
    serve_port: int | None,
    host: str,
    sql_url: str | None,
    query: str | None,
    watermark: str | None,
    tokens_file: Path | None,
    quarantine: Path,
    drain_timeout: float,
    metrics_port: int | None,
    accept_withdrawals: bool,
    files: tuple[Path, ...],
) -> None:
    """Pseudonymise, minimise and publish FILES (in the order given), a watched folder
    or pushed events."""
    from adapters import runner

    if not files and watch_dir is None and serve_port is None and sql_url is None:
        raise ConfigError("give FILES, --watch DIR, --sql URL or --serve PORT")
    if sql_url is not None and (query is None or watermark is None):
        raise ConfigError("--sql needs --query and --watermark")
    if metrics_port is None:
        long_running = watch_dir is not None or serve_port is not None
        metrics_port = settings.adapter_metrics_port if long_running else 0
    with (
        runner.adapter_run(
            settings, profile_name, agency, quarantine=quarantine, agreement=_agreement()
        ) as run,
        runner.metrics_served(run, metrics_port),
    ):
        if files:
            runner.run_files(run, files, drain_timeout, accept_withdrawals)
        if sql_url is not None and query is not None and watermark is not None:
            runner.run_query(run, sql_url, query, watermark, drain_timeout)
        if watch_dir is not None:
            click.echo(f"watching {watch_dir} (Ctrl-C stops)")
            runner.watch(run, watch_dir)
        if serve_port is not None:
            runner.serve(run, host, serve_port, tokens_file)


@adapter.command("check")
@click.option("--profile", "profile_name", required=True)
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.pass_obj
@_friendly
def adapter_check(settings: HubSettings, profile_name: str, files: tuple[Path, ...]) -> None:
    """Dry run: report accepted rows and rejected rows by reason. Publishes nothing."""
    from adapters.runner import adapter_run as open_run
    from adapters.runner import check_file

    with open_run(settings, profile_name, None, dry_run=True, agreement=_agreement()) as run:
        for path in files:
            summary = check_file(run, path)
            for reason, count in summary.reasons():
                click.echo(f"  {count:>6} rejected: {reason}")
            click.echo(summary.line())


@adapter.command("drain")
@click.option("--timeout", type=float, default=60.0, show_default=True)
@click.option("--follow", is_flag=True, help="Keep draining until SIGTERM or Ctrl-C.")
@click.option("--poll", type=float, default=2.0, show_default=True, help="With --follow.")
@click.option(
    "--agency",
    default="unknown",
    show_default=True,
    help="The agency id the metrics name (the `agency` label).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0),
    default=None,
    help="With --follow: serve Prometheus /metrics on this port; 0: off."
    " Default: HUB_ADAPTER_METRICS_PORT (9466).",
)
@click.pass_obj
@_friendly
def adapter_drain(
    settings: HubSettings,
    timeout: float,
    follow: bool,
    poll: float,
    agency: str,
    metrics_port: int | None,
) -> None:
    """Send what the outbox (HUB_OUTBOX) holds. With --follow, keep sending through any
    Kafka outage or disk error (retrying with backoff); it exits 1 only when the outbox is
    damaged, saying what to do."""
    from adapters.drain import drain

    drain(settings, timeout, follow, poll, agency, metrics_port)


@main.command()
@click.option("--agency", required=True, help="A shipped profile: the export takes its shape.")
@click.option("--rows", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True)
@_friendly
def synth(agency: str, rows: int, seed: int, out: Path) -> None:
    """Write a synthetic export in AGENCY's own shape (invented people, realistic mess)."""
    from adapters.profile import load_profile
    from adapters.synth.cases import child_pool, synth_rows, write_csv
    from adapters.synth.exports import write_export

    pool = child_pool(max(50, rows // 2))
    if agency == "generic":
        write_csv(out, synth_rows(agency, rows, seed, pool))
    else:
        write_export(load_profile(agency), rows, seed, pool, out)
    click.echo(f"wrote {rows} rows for {agency} to {out}")


# --- streams --------------------------------------------------------------------
@main.group()
def streams() -> None:
    """Stream processing."""


@streams.command("worker")
@click.option("--loglevel", default="info", show_default=True)
@click.pass_obj
@_friendly
def streams_worker(settings: HubSettings, loglevel: str) -> None:
    """Run the Faust worker: dedup, count, serve /metrics (HUB_METRICS_PORT)."""
    from streams.worker import run_worker

    run_worker(settings, _agreement(), loglevel)


@streams.command("publisher")
@click.pass_obj
@_friendly
def streams_publisher(settings: HubSettings) -> None:
    """Publish closed periods on the agreement's timetable; serve the published trends as
    metrics (HUB_PUBLISHER_METRICS_PORT)."""
    from streams.publish.run import run_publisher

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    run_publisher(settings, _agreement())


@streams.command("replay-deferred")
@click.option(
    "--timeout", type=float, default=120.0, show_default=True, help="Seconds to read for."
)
@click.pass_obj
@_friendly
def streams_replay_deferred(settings: HubSettings, timeout: float) -> None:
    """Send deferred events (written with a schema newer than the workers had) back to their
    topics, once the hub ships that schema; those it still cannot read stay deferred."""
    from streams.deferred import replay_deferred

    click.echo(replay_deferred(settings, timeout).summary())


@main.command()
@click.option("--now", "now", is_flag=True, required=True, help="Release now, off the timetable.")
@click.option("--period", required=True, help="A month (2026-10) or a quarter (2026Q3).")
@click.option(
    "--publication",
    default=None,
    help="The agreement's publication; by default the one that closes this kind of period.",
)
@click.option(
    "--wait",
    type=float,
    default=300.0,
    show_default=True,
    help="Seconds to wait for the stream workers to catch up.",
)
@click.pass_obj
@_friendly
def publish(
    settings: HubSettings, now: bool, period: str, publication: str | None, wait: float
) -> None:
    """Force the release of one ended PERIOD now (logged); a revision if it changed."""
    from hub.periods import period_label
    from streams.publish.publisher import Publisher

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    publisher = Publisher(settings, _agreement(), worker_timeout=wait, role="forced")
    try:
        release = publisher.publish_now(period, publication)
    finally:
        publisher.close()
    kind = publisher.agreement.schedule(release.publication).closes
    label = period_label(kind, release.period)
    if release.changed:
        click.echo(
            f"released {release.publication} {label} revision {release.revision}:"
            f" {release.cells} cells, {release.suppressed} suppressed"
        )
    else:
        click.echo(
            f"{release.publication} {label} unchanged since revision {release.revision};"
            " nothing sent"
        )


@main.command()
@click.argument("topic", required=False)
@click.option("--from", "since", default=None, help="First period: 2026-01 or 2026Q1.")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True
)
@click.option("--follow", is_flag=True, help="Keep printing new publications until Ctrl-C.")
@click.pass_obj
@_friendly
def subscribe(
    settings: HubSettings, topic: str | None, since: str | None, fmt: str, follow: bool
) -> None:
    """Print the published trend cells (latest revision of each; TOPIC defaults to
    partnership.trends.v1). Suppressed cells have an empty count and suppressed=True."""
    from hub.subscribe import subscribe as run_subscribe

    printed = run_subscribe(settings, topic, since, fmt, follow)
    click.echo(f"{printed} published cells", err=True)


@main.command()
@click.option("--period", required=True, help="A quarter (2026Q3) or a month (2026-09).")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="HTML file."
)
@click.pass_obj
@_friendly
def report(settings: HubSettings, period: str, out: Path) -> None:
    """Write the board pack for a published period: one self-contained HTML file."""
    try:
        from hub.report import write_pack
    except ImportError as exc:
        raise HubError(
            f"`hub report` needs the report extra ({exc.name} is missing):"
            " pip install 'online-risk-hub[report]' (make setup installs it)"
        ) from exc
    from hub.subscribe import published_rows

    agreement = _agreement()
    written = write_pack(published_rows(settings), agreement, period, out)
    click.echo(
        f"wrote {written.path}: {written.publication} {written.period} revision"
        f" {written.revision}, {written.cells} cells, {written.suppressed} suppressed"
    )


# --- security -------------------------------------------------------------------
@main.group()
def security() -> None:
    """Kafka principals: ACLs from the agreement, SCRAM credentials (run as a super user)."""


@security.command("acls")
@click.option("--apply", "apply_", is_flag=True, help="Create them on the cluster.")
@click.pass_obj
@_friendly
def security_acls(settings: HubSettings, apply_: bool) -> None:
    """List (and with --apply create) the ACLs the agreement implies."""
    from hub.ops.acls import apply_acls, derived_acls

    grants = derived_acls(_agreement(), settings)
    for grant in grants:
        click.echo(f"{grant.principal} {grant.operation} topic {grant.topic}")
    if apply_:
        applied = apply_acls(settings, grants)
        click.echo(f"{applied} ACLs in place on {settings.bootstrap_servers}", err=True)


@security.command("set-password")
@click.argument("user")
@click.pass_obj
@_friendly
def security_set_password(settings: HubSettings, user: str) -> None:
    """Store USER's SCRAM credential; the password is read from standard input."""
    from hub.ops.acls import set_password

    if sys.stdin.isatty():
        password = click.prompt(f"password for {user}", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\n")
    set_password(settings, user, password)
    click.echo(f"credential of User:{user} stored ({settings.sasl_mechanism})", err=True)


@main.command()
@click.pass_obj
@_friendly
def demo(settings: HubSettings) -> None:
    """Broker, topics, worker and simulated agencies, until Ctrl-C."""
    from hub.cli.demo import run_demo

    run_demo(settings, _agreement())
