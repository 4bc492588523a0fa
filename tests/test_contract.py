"""The proto keeps every promise of the released contract (contract/v1.0.0), checked by `buf breaking`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUF = Path(sys.executable).parent / "buf"  # the buf-bin package: no npm needed
RELEASED = ROOT / "contract" / "v1.0.0"


def breaking(proto: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BUF), "breaking", str(proto), "--against", str(RELEASED)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_proto_breaks_nothing_of_the_released_contract() -> None:
    result = breaking(ROOT / "proto")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_breaking_change_fails_the_check(tmp_path: Path) -> None:
    copy = tmp_path / "proto"
    shutil.copytree(ROOT / "proto", copy)
    service = copy / "timemachine" / "v1" / "service.proto"
    text = service.read_text()
    assert "string request_id = 8;" in text
    service.write_text(text.replace("string request_id = 8;", "string request_key = 8;", 1))  # a renamed field
    result = breaking(copy)
    assert result.returncode != 0
    assert "request_key" in result.stdout + result.stderr
