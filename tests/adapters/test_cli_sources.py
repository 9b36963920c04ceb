"""`hub adapter run --sql` and `--serve` end to end: real PostgreSQL, real HTTP, real Kafka."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hub.settings import HubSettings
from tests.support.case_db import GOOD, Database
from tests.support.outbox import event_ids_on, outbox_counts, wait_for
from tests.support.processes import free_port, settings_env


def test_sql_source_from_the_command_line(topics: HubSettings, db: Database) -> None:
    db.insert({"record_id": "CS-1"}, {"record_id": "CS-2"}, {"record_id": "CS-3"})
    command = [
        sys.executable,
        "-m",
        "hub.cli",
        "adapter",
        "run",
        "--profile",
        "generic",
        "--agency",
        "spa",
        "--sql",
        db.url,
        "--query",
        "SELECT * FROM cs_case_events",
        "--watermark",
        "updated_at",
    ]
    first = subprocess.run(
        command, env=settings_env(topics), capture_output=True, text=True, timeout=180, check=False
    )
    assert first.returncode == 0, first.stderr
    assert "3 rows read; 3 new, 0 corrected, 0 withdrawn, 0 unchanged" in first.stdout
    assert len(event_ids_on(topics, topics.case_topic("spa"))) == 3

    db.insert({"record_id": "CS-4", "updated_at": "2026-09-15 08:00:00+00"})
    second = subprocess.run(
        command, env=settings_env(topics), capture_output=True, text=True, timeout=180, check=False
    )
    assert second.returncode == 0, second.stderr
    assert "; 1 new, 0 corrected, 0 withdrawn," in second.stdout
    assert len(set(event_ids_on(topics, topics.case_topic("spa")))) == 4
    assert GOOD["worker_notes"] not in first.stdout + second.stdout


def test_push_endpoint_from_the_command_line(topics: HubSettings, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"s3cret-token-for-test": "camhs"}))
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hub.cli",
            "adapter",
            "run",
            "--profile",
            "generic",
            "--agency",
            "camhs",
            "--serve",
            str(port),
            "--tokens",
            str(tokens),
            "--quarantine",
            str(tmp_path / "q"),
        ],
        env=settings_env(topics),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    items = [
        {
            "record_id": f"K-{i}",
            "occurred_on": "2026-10-01",
            "online_component": "yes",
            "risk_codes": "cyberbullying",
        }
        for i in range(5)
    ]
    try:
        deadline = time.monotonic() + 60
        while True:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                connection.request(
                    "POST",
                    "/events",
                    body=json.dumps(items),
                    headers={
                        "Authorization": "Bearer s3cret-token-for-test",
                        "Content-Type": "application/json",
                    },
                )
                response = connection.getresponse()
                status, answer = response.status, response.read()
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.3)
            finally:
                connection.close()  # the endpoint keeps connections alive
        assert status == 202, answer
        wait_for(lambda: outbox_counts(topics.outbox) == (0, 5), 60, "the push to reach Kafka")
    finally:
        os.killpg(server.pid, signal.SIGINT)
        output = server.communicate(timeout=60)[0].decode()
        (tmp_path / "server.log").write_text(output)
    assert len(event_ids_on(topics, topics.case_topic("camhs"))) == 5
