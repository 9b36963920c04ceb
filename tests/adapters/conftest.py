"""Adapter fixtures: one private PostgreSQL per session, a fresh database per test.

When PostgreSQL is not installed or will not start, every test that needs it
fails with the reason and what to install: nothing here skips.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from tests.support.case_db import SCHEMA, Database
from tests.support.postgres import PostgresCluster, PostgresUnavailable


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A SQLAlchemy URL (postgresql+psycopg, with password) to a private cluster's `postgres`."""
    try:
        cluster = PostgresCluster()
    except PostgresUnavailable as exc:
        pytest.fail(f"PostgreSQL for the SQL source tests: {exc}", pytrace=False)
    try:
        url = cluster.start()
    except (PostgresUnavailable, OSError) as exc:
        cluster.stop()
        pytest.fail(f"PostgreSQL for the SQL source tests did not start: {exc}", pytrace=False)
    try:
        yield url
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(postgres: str) -> Iterator[str]:
    """A URL to a new, empty database of its own, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(postgres).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def db(pg_url: str) -> Iterator[Database]:
    database = Database(pg_url)
    database.execute(SCHEMA)
    try:
        yield database
    finally:
        database.engine.dispose()
