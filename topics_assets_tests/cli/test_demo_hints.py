"""`topics demo` as a new user runs it: its closing hints work as pasted, and open the same store and instance."""

import json
import os
import shlex
import subprocess
import sys

PROBE = ("import json; from dagster import DagsterInstance; from topics_assets.definitions import defs; "
         "i = DagsterInstance.get(); print(json.dumps({'database': defs.resources['store'].database, "
         "'min_traces': defs.resources['settings'].get_settings().gates.min_traces, "
         "'dagster_home': i.root_directory, 'runs': i.get_runs_count()}))")


def test_the_demos_closing_hints_work_as_pasted_and_open_the_same_store_and_instance(tmp_path):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir(), elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOPICS_", "DAGSTER_"))}
    env["PATH"] = "/usr/bin:/bin"  # as after the setup command: the venv's bin is not on PATH
    shell_env = dict(env)
    env.update(TOPICS_HOME="demo-home", TOPICS_MIN_TRACES="50", TOPICS_MIN_UNIQUE_FACETS="20")
    r = subprocess.run([sys.executable, "-m", "topics_assets.cli", "demo", "--traces", "90", "--days", "2"],
                       cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    # Only the command's own progress lines on stderr: no Dagster warnings, no progress bars.
    assert all(line.startswith("» ") for line in r.stderr.splitlines()), r.stderr
    lines = r.stdout.splitlines()
    sql_hint = lines[lines.index("Explore:") + 1].strip()
    ui_hint = next(line.strip() for line in lines if " dev -m topics_assets.definitions" in line)

    # Pasted in another directory, with no TOPICS_* variable set and no venv on PATH.
    out = subprocess.run(["bash", "-c", sql_hint], cwd=elsewhere, env=shell_env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:3] == ["facet", "topic_name", "n"] and len(out.stdout.splitlines()) > 3

    prefix = ui_hint[:ui_hint.index(" dev -m")].rsplit(" ", 1)[0]  # the environment, without the dagster command
    probe = subprocess.run(["bash", "-c", f"{prefix} {sys.executable} -c {shlex.quote(PROBE)}"], cwd=elsewhere,
                           env=shell_env, capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr
    seen = json.loads(probe.stdout.splitlines()[-1])
    assert seen["database"] == str(work / "demo-home" / "topics.duckdb")  # the store the demo wrote
    assert seen["dagster_home"] == str(work / "demo-home" / "dagster") and seen["runs"] > 0  # the demo's runs
    assert seen["min_traces"] == 50  # the settings the demo ran with

    validate = ui_hint.replace(" dev -m ", " definitions validate -m ")
    checked = subprocess.run(["bash", "-c", validate], cwd=elsewhere, env=shell_env, capture_output=True,
                             text=True, timeout=300)
    assert checked.returncode == 0, checked.stdout + checked.stderr
