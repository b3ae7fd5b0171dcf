"""The `topics` command, run as a user would, on a temporary home."""

import json


from topics_assets.demo import generate_traces

GOOD_CHAT = {"id": "chat-1", "project": "shop", "timestamp": "2026-11-20T10:00:00Z",
             "messages": [{"role": "user", "content": "Where is my parcel? It was due Monday."},
                          {"role": "assistant", "content": "Let me check that for you."}]}


def test_ingest_quarantines_bad_lines_and_keeps_the_rest(topics, tmp_path):
    span_trace = generate_traces(n_traces=1, days=1, seed=3, project="shop")[0]
    lines = [
        json.dumps(GOOD_CHAT),
        '{"id": "broken", "messages": [',                     # malformed JSON
        json.dumps(span_trace),
        json.dumps([1, 2, 3]),                                  # not an object
        json.dumps({"id": "no-messages", "project": "shop"}),  # unknown shape
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes("\n".join(lines).encode() + b"\n\xff\xfe not utf-8\n")
    result = topics("ingest", str(path))
    assert result.exit_code == 0, result.output
    assert "loaded 2, updated 0, unchanged 0, quarantined 4" in result.output
    q = json.loads(topics("sql", "SELECT line, reason FROM quarantine ORDER BY line", "--format", "json").output)
    assert [r["line"] for r in q] == [2, 4, 5, 6]
    assert all(r["reason"] for r in q)
    ids = json.loads(topics("sql", "SELECT trace_id FROM raw_traces ORDER BY 1", "--format", "json").output)
    assert [r["trace_id"] for r in ids] == sorted(["chat-1", span_trace["trace_id"]])
    # The same file again changes nothing; a changed trace counts as updated.
    assert "loaded 0, updated 0, unchanged 2" in topics("ingest", str(path)).output
    GOOD_CHAT["messages"].append({"role": "user", "content": "Also, can I change the address?"})
    path.write_text(json.dumps(GOOD_CHAT) + "\n")
    assert "loaded 0, updated 1, unchanged 0" in topics("ingest", str(path)).output


def test_run_status_and_sql_below_the_gates(topics, tmp_path):
    path = tmp_path / "few.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in generate_traces(n_traces=30, days=2, seed=5, project="shop")))
    assert topics("ingest", str(path)).exit_code == 0
    result = topics("run", "--project", "shop")
    assert result.exit_code == 0, result.output
    assert "30 traces in project 'shop', need 400" in result.output
    status = topics("status").output
    assert "accumulating" in status and "shop" in status
    csv = topics("sql", "SELECT facet, count(*) AS n FROM facets GROUP BY 1 ORDER BY 1", "--format", "csv").output
    assert csv.splitlines() == ["facet,n", "issues,30", "sentiment,30", "task,30"]
    bad = topics("sql", "SELECT nope FROM nowhere")
    assert bad.exit_code != 0 and "query failed" in bad.output


def test_help_explains_commands(topics):
    out = topics("--help").output
    for command in ("demo", "ingest", "run", "sql", "status", "maps"):
        assert command in out
    assert "400 traces" in topics("run", "--help").output


def test_sql_is_read_only_unless_write_is_given(topics, tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(GOOD_CHAT) + "\n")
    assert topics("ingest", str(path)).exit_code == 0
    refused = topics("sql", "DELETE FROM raw_traces")
    assert refused.exit_code != 0 and "query failed" in refused.output and "read-only" in refused.output
    assert "chat-1" in topics("sql", "SELECT trace_id FROM raw_traces").output
    done = topics("sql", "--write", "DELETE FROM raw_traces")
    assert done.exit_code == 0, done.output
    assert "may change the store" in done.stderr and "may change the store" not in done.stdout
    assert topics("sql", "SELECT count(*) AS n FROM raw_traces", "--format", "csv").output.splitlines() == ["n", "0"]


def test_sql_table_prints_integer_sums_as_integers_and_no_negative_zero(topics):
    out = topics("sql", "SELECT sum(x) AS total, avg(x) AS mean, -0.00000036 AS tiny, 1.5 AS half "
                        "FROM (VALUES (40), (54)) t(x)").output
    header, row = out.splitlines()
    assert header.split() == ["total", "mean", "tiny", "half"]
    assert row.split() == ["94", "47", "0.0", "1.5"]


def _ingest_synthetic(topics, tmp_path, n: int) -> None:
    path = tmp_path / f"synthetic-{n}.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in generate_traces(n_traces=n, days=2, seed=5, project="shop")))
    assert topics("ingest", str(path)).exit_code == 0


def test_status_counts_ingested_traces_and_names_every_unmet_gate(topics, tmp_path):
    _ingest_synthetic(topics, tmp_path, 30)
    before_run = topics("status").output
    row = next(line.split() for line in before_run.splitlines() if line.startswith("shop") and " task " in line)
    assert row[:5] == ["shop", "task", "30", "0", "0"]  # ingested, not yet preprocessed
    assert topics("run").exit_code == 0
    out = topics("status").output
    assert "below: traces 30/400, unique" in out
    note = next(line for line in out.splitlines() if line.startswith("shop/task: no map yet"))
    assert "30 traces in project 'shop', need 400" in note and "unique task facets in project 'shop', need 100" in note
    assert "TOPICS_MIN_TRACES=30" in out and "TOPICS_MIN_UNIQUE_FACETS=" in out
    assert "cluster --project shop --facet task" in out
    why = topics("maps", "--facet", "issues").output
    assert "shop / issues: no topic map yet, below the gates: 30 traces in project 'shop', need 400" in why
    assert "cluster --project shop --facet issues" in why


def test_status_says_a_map_exists_when_the_gates_were_lowered_for_it(topics, tmp_path, monkeypatch):
    _ingest_synthetic(topics, tmp_path, 90)
    monkeypatch.setenv("TOPICS_MIN_TRACES", "50")
    monkeypatch.setenv("TOPICS_MIN_UNIQUE_FACETS", "20")
    assert "acme" not in topics("run").output
    monkeypatch.delenv("TOPICS_MIN_TRACES")
    monkeypatch.delenv("TOPICS_MIN_UNIQUE_FACETS")
    out = topics("status").output
    row = next(line.split() for line in out.splitlines() if line.startswith("shop") and " task " in line)
    assert row[-3] == "1" and row[-1] == "idle"  # generation 1 exists and is used
    assert "shop/task: map generation 1 exists and stays in use (not regenerated until the gates are met); " \
           "the data now misses: 90 traces in project 'shop', need 400" in out
    assert "gates_met" not in out and not [line for line in out.splitlines() if " task " in line and " no " in line]


def test_an_unknown_facet_is_an_error(topics, tmp_path):
    _ingest_synthetic(topics, tmp_path, 5)
    for args in (("maps", "--facet", "tasks"), ("cluster", "--project", "shop", "--facet", "tasks")):
        result = topics(*args)
        assert result.exit_code != 0 and "unknown facet 'tasks'; facets with topic maps: task, sentiment, issues" \
            in result.output, args


def test_ingest_groups_quarantine_reasons_by_kind_with_their_lines_per_file(topics, tmp_path):
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    one.write_text("\n".join([json.dumps(GOOD_CHAT), "{oops", json.dumps([1]), "{nope", "", "not json"]) + "\n")
    two.write_text("{broken\n" + json.dumps({**GOOD_CHAT, "id": "chat-2"}) + "\n")
    out = topics("ingest", str(one), str(two)).output.splitlines()
    at = out.index(f"  quarantined in {one}:")
    assert out[at + 1].startswith("    not valid JSON: 3 (lines 2, 4, 6)")
    assert out[at + 2].startswith("    ") and "(line 3)" in out[at + 2]
    assert out[at + 3] == f"  quarantined in {two}:" and out[at + 4] == "    not valid JSON: 1 (line 1)"
