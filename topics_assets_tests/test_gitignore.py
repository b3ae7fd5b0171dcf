"""What `dagster dev` and the CLI leave in a checkout is ignored, so `git status` stays clean."""

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", [".nux/nux.yaml", ".topics/topics.duckdb", ".tmp_dagster_home_x/dagster.yaml"])
def test_what_dagster_dev_and_the_cli_write_is_ignored(path):
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    assert subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO).returncode == 0, path
