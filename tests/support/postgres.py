"""A private PostgreSQL cluster for the tests: its own directory, port and password.

Debian's server binaries (``apt-get install postgresql``, PostgreSQL 15 on
Debian 12) live under ``/usr/lib/postgresql/<version>/bin``; `initdb` and
`pg_ctl` refuse to run as root, so as root they run as the ``postgres``
system user (``runuser -u postgres --``) on a directory that user owns. The
cluster listens on 127.0.0.1 only, on a free port, with password (SCRAM)
authentication over TCP, and is stopped and removed afterwards.

Anything that stops it starting raises `PostgresUnavailable` with what to
install or check; the fixture turns that into a test failure, never a skip.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.processes import free_port

PG_ROOT = Path("/usr/lib/postgresql")
INSTALL_HINT = "install it with `apt-get install -y postgresql` (Debian 12: PostgreSQL 15)"
SUPERUSER = "hub"


class PostgresUnavailable(Exception):
    """PostgreSQL is not installed, or the private cluster would not start."""


def server_bin() -> Path:
    """The newest installed server's bin directory (HUB_TEST_PG_BIN overrides)."""
    override = os.environ.get("HUB_TEST_PG_BIN")
    candidates = [Path(override)] if override else []
    if PG_ROOT.is_dir():
        versions = [p for p in PG_ROOT.iterdir() if p.name.isdigit()]
        candidates += [p / "bin" for p in sorted(versions, key=lambda p: int(p.name), reverse=True)]
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    raise PostgresUnavailable(
        f"PostgreSQL's server is not installed (no initdb and pg_ctl under {PG_ROOT}/*/bin"
        f" or HUB_TEST_PG_BIN); {INSTALL_HINT}."
    )


class PostgresCluster:
    """One throwaway cluster; `start()` returns a SQLAlchemy URL to its ``postgres`` database."""

    def __init__(self) -> None:
        self.bin = server_bin()
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self.root = Path(tempfile.mkdtemp(prefix="hub-test-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._prefix: list[str] = []
        self._started = False

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/postgres"

    def _as_owner(self) -> None:
        """As root, hand the directory to the postgres user and run the tools as that user."""
        if os.geteuid() != 0:
            return
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable(
                "running as root, and there is no `postgres` system user to run PostgreSQL"
                f" as (initdb refuses root); {INSTALL_HINT}, which creates that user."
            ) from None
        runuser = shutil.which("runuser")
        if runuser is None:
            raise PostgresUnavailable("running as root and `runuser` (util-linux) is missing")
        os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self._prefix = [runuser, "-u", "postgres", "--"]

    def _run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._prefix, *argv],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no server log)"

    def start(self) -> str:
        self._as_owner()
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._prefix:
            shutil.chown(pwfile, "postgres")
        pwfile.chmod(0o600)
        init = self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=peer",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        )
        pwfile.unlink()
        if init.returncode != 0:
            raise PostgresUnavailable(
                f"initdb failed (exit {init.returncode}): {init.stderr.strip()[-2000:]}"
            )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port}"
            f" -c unix_socket_directories={self.root} -c fsync=off"
        )
        started = self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        if started.returncode != 0:
            raise PostgresUnavailable(
                f"pg_ctl start failed on port {self.port} (exit {started.returncode}):"
                f" {started.stderr.strip()}\nserver log:\n{self._log_tail()}"
            )
        self._started = True
        return self.url

    def stop(self) -> None:
        try:
            if self._started:
                pg_ctl = str(self.bin / "pg_ctl")
                stopped = self._run(pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop")
                if stopped.returncode != 0:
                    self._run(pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")
                self._started = False
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
