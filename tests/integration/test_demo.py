"""The README's first command: the whole pipeline on a local stack."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_the_demo_runs_the_pipeline_end_to_end_and_cleans_up(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "CDC_DATABASE_URL")}
    state = tmp_path / "stack"
    done = subprocess.run([sys.executable, "-m", "cdc", "demo", "--once", "--dir", str(state)],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "members/1203852169: Guðrún Sigurðardóttir" in out
    assert "email=gudrun@example.is" in out
    last_step = out.split("Ari resigns")[-1]
    assert "2307993349" not in last_step
    assert not (state / "stack.json").exists()
