"""Start-up problems are one clear line, and nothing is started for nothing."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from server.embedded import EmbeddedPostgres, EmbeddedS3, free_port
from tests.conftest import Stack
from tests.processes import ROOT


def _start(data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "TM_DATA_DIR": str(data_dir),
        "TM_DATABASE_URL": "",
        "TM_S3_ENDPOINT_URL": "",
        "TM_GRPC_ADDRESS": f"127.0.0.1:{free_port()}",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "server"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize("variable", ["TM_GRPC_ADDRESS", "TM_METRICS_ADDRESS"])
def test_a_taken_port_stops_the_start_before_any_store_starts(tmp_path: Path, variable: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        result = _start(tmp_path, **{variable: address})
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode == 2, lines
    assert len(lines) == 1 and f"{variable}={address} is in use" in lines[0], lines
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "postgres").exists() and not (tmp_path / "s3").exists()  # no store was started


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert lines, "the server said nothing"
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    return lines[-1]


@pytest.mark.slow
def test_store_problems_are_one_line_each(stack: Stack, tmp_path: Path) -> None:
    """The reason and the fix, the password masked, within the bounded wait (1 s here)."""
    s3 = stack.runtime.s3_url or ""
    keys = {}
    if stack.runtime.s3 is not None:
        keys = {"AWS_ACCESS_KEY_ID": stack.runtime.s3.access_key, "AWS_SECRET_ACCESS_KEY": stack.runtime.s3.secret_key}
    database = stack.runtime.database_url
    wait = {"TM_STORE_WAIT_SECONDS": "1", "TM_LOG_FORMAT": "text"}
    cases = [
        (
            {"TM_DATABASE_URL": f"postgresql://tm:s3cret@127.0.0.1:{free_port()}/tm", "TM_S3_ENDPOINT_URL": s3},
            "refused",
        ),
        (
            {"TM_DATABASE_URL": "postgresql://tm:s3cret@no-such-host.invalid/tm", "TM_S3_ENDPOINT_URL": s3},
            "does not resolve",
        ),
        (
            {"TM_DATABASE_URL": database.replace("/postgres?", "/no_such_db?"), "TM_S3_ENDPOINT_URL": s3},
            "database does not exist",
        ),
        (
            {
                "TM_DATABASE_URL": database,
                "TM_S3_ENDPOINT_URL": s3,
                "AWS_ACCESS_KEY_ID": "",
                "AWS_SECRET_ACCESS_KEY": "",
            },
            "no S3 credentials",
        ),
        (
            {"TM_DATABASE_URL": database, "TM_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", **keys},
            "S3 at http://127.0.0.1",
        ),
    ]
    for n, (env, expected) in enumerate(cases):
        started = time.monotonic()
        no_aws_files = {"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent"}
        result = _start(tmp_path / str(n), **{**keys, **no_aws_files, **wait, **env})
        line = _last_line(result)
        assert result.returncode == 1, (expected, line)
        assert expected in line and "s3cret" not in result.stdout + result.stderr, (expected, line)
        assert time.monotonic() - started < 30, expected
        assert not (tmp_path / str(n) / "postgres").exists() and not (tmp_path / str(n) / "s3").exists()


@pytest.mark.slow
def test_every_bad_setting_is_reported_at_once(tmp_path: Path) -> None:
    bad = {"TM_GRPC_WORKERS": "abc", "TM_LOG_LEVEL": "bogus", "TM_TLS_CERT_FILE": str(tmp_path / "missing.pem")}
    result = _start(tmp_path, **bad, TM_TLS_KEY_FILE=str(tmp_path / "missing.key"))
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode == 2, lines
    assert "Traceback" not in result.stderr
    named = ["TM_GRPC_WORKERS", "TM_LOG_LEVEL", "TM_TLS_CERT_FILE", "TM_TLS_KEY_FILE"]
    assert len(lines) == len(named), lines
    for name in named:
        assert sum(line.startswith(f"configuration error: {name}") for line in lines) == 1, (name, lines)
    assert not (tmp_path / "postgres").exists() and not (tmp_path / "s3").exists()


def test_make_says_which_python_it_needs(tmp_path: Path) -> None:
    old = tmp_path / "python3.9"  # answers --version like Python 3.9 and fails anything else
    old.write_text('#!/bin/sh\nif [ "$1" = "--version" ]; then echo "Python 3.9.2"; exit 0; fi\nexit 1\n')
    old.chmod(0o755)
    for python, found in ((old, "Python 3.9.2"), (tmp_path / "absent", "not found")):
        result = subprocess.run(
            ["make", "venv", f"VENV={tmp_path / 'venv'}", f"PYTHON={python}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode != 0
        assert f"make needs Python 3.11 or newer as '{python}' ({found})" in result.stderr
        assert not (tmp_path / "venv").exists()


@pytest.mark.slow
def test_an_embedded_store_started_before_another_failed_is_stopped(tmp_path: Path) -> None:
    """Embedded PostgreSQL, then an S3 nobody answers: the start fails in one line and leaves nothing running."""
    keys = {"AWS_ACCESS_KEY_ID": "any", "AWS_SECRET_ACCESS_KEY": "any", "TM_STORE_WAIT_SECONDS": "1"}
    result = _start(tmp_path, TM_S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}", TM_LOG_FORMAT="text", **keys)
    line = _last_line(result)
    assert result.returncode == 1 and "S3 at http://127.0.0.1" in line, line
    assert (tmp_path / "postgres" / "PG_VERSION").exists()  # it did start...
    assert not EmbeddedPostgres(tmp_path).running()  # ...and was stopped


IDENTITIES = {
    "identities": [
        {"name": n, "credentials": [{"accessKey": n, "secretKey": f"{n}-secret"}], "actions": actions}
        for n, actions in (("admin", ["Admin", "Read", "List", "Write"]), ("reader", ["Read", "List"]), ("nobody", []))
    ]
}


@pytest.mark.slow
def test_s3_refusals_say_which_permission_is_missing(stack: Stack, tmp_path: Path) -> None:
    """A SeaweedFS with keys that may do less: each refused start-up step is its own line and fix."""
    identities = tmp_path / "s3.json"
    identities.write_text(json.dumps(IDENTITIES))
    s3 = EmbeddedS3(tmp_path / "store", identities)
    url = s3.start()
    try:
        admin = boto3.client(
            "s3",
            endpoint_url=url,
            aws_access_key_id="admin",
            aws_secret_access_key="admin-secret",
            region_name="us-east-1",
        )
        admin.create_bucket(Bucket="unversioned")
        cases = [
            ("nobody", "nobody-secret", "unversioned", "these credentials may not read bucket 'unversioned'"),
            ("reader", "wrong-secret", "unversioned", "refused the credentials (SignatureDoesNotMatch)"),
            (
                "reader",
                "reader-secret",
                "absent",
                "bucket 'absent' does not exist and these credentials may not create it",
            ),
            ("reader", "reader-secret", "unversioned", "versioning is off on bucket 'unversioned'"),
        ]
        for n, (key, secret, bucket, expected) in enumerate(cases):
            env = {
                "TM_DATABASE_URL": stack.runtime.database_url,
                "TM_S3_ENDPOINT_URL": url,
                "TM_S3_BUCKET": bucket,
                "AWS_ACCESS_KEY_ID": key,
                "AWS_SECRET_ACCESS_KEY": secret,
                "TM_STORE_WAIT_SECONDS": "1",
                "TM_LOG_FORMAT": "text",
            }
            result = _start(tmp_path / str(n), **env)
            line = _last_line(result)
            assert result.returncode == 1 and f"S3 at {url}" in line, (expected, line)
            assert expected in line and secret not in result.stdout + result.stderr, (expected, line)
        # Nothing was changed by the refused starts.
        assert admin.get_bucket_versioning(Bucket="unversioned").get("Status") is None
        assert "absent" not in {b["Name"] for b in admin.list_buckets()["Buckets"]}
    finally:
        s3.stop()


@pytest.mark.slow
def test_a_database_user_without_privileges_is_told_so(stack: Stack, tmp_path: Path) -> None:
    url = stack.runtime.database_url
    role = f"tm_weak_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'weak-pass'").format(sql.Identifier(role)))
    try:
        weak = make_conninfo(url, user=role, password="weak-pass")
        keys = {}
        if stack.runtime.s3 is not None:
            keys = {
                "AWS_ACCESS_KEY_ID": stack.runtime.s3.access_key,
                "AWS_SECRET_ACCESS_KEY": stack.runtime.s3.secret_key,
            }
        result = _start(
            tmp_path, TM_DATABASE_URL=weak, TM_S3_ENDPOINT_URL=stack.runtime.s3_url or "", TM_LOG_FORMAT="text", **keys
        )
        line = _last_line(result)
        assert result.returncode == 1, line
        assert "lacks a privilege" in line and "use the schema's owner in TM_DATABASE_URL" in line, line
        assert "weak-pass" not in result.stdout + result.stderr
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
