"""Replicas starting together on an empty database: both come up, with one schema."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import psycopg

from service import migrations
from tests.conftest import Stack

ROOT = Path(__file__).resolve().parent.parent


def test_two_processes_migrate_an_empty_database_at_once(stack: Stack) -> None:
    name = f"tm_race_{uuid.uuid4().hex[:12]}"
    base = stack.runtime.database_url
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"create database {name}")
    url = base.replace("/postgres?", f"/{name}?")
    try:
        script = "import sys; from service import migrations; print(len(migrations.apply(sys.argv[1])))"
        runs = [
            subprocess.Popen([sys.executable, "-c", script, url], cwd=ROOT, stdout=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        applied = sorted(int(run.communicate(timeout=120)[0].strip()) for run in runs)
        assert [run.returncode for run in runs] == [0, 0]
        total = len(migrations.available())
        assert applied == [0, total]  # one applied everything, the other found it done
        with psycopg.connect(url) as conn:
            numbers = [row[0] for row in conn.execute("select number from tm_schema_migrations order by number")]
        assert numbers == list(range(1, total + 1))
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"drop database {name} with (force)")
