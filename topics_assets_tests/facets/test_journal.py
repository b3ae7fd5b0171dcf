"""The facet journal names a trace by (project, trace_id); an older release's lines are ignored."""

import json

from topics_assets.facets.journal import FacetJournal


def test_the_same_trace_id_in_two_projects_has_two_journal_entries(tmp_path):
    journal = FacetJournal(tmp_path)
    journal.append(("A", "42", "c", "f", "m"), {"task": "refund"})
    journal.append(("B", "42", "c", "f", "m"), {"task": "invoice"})
    assert FacetJournal(tmp_path).load() == {("A", "42", "c", "f", "m"): {"task": "refund"},
                                             ("B", "42", "c", "f", "m"): {"task": "invoice"}}
    journal.finish(stored={("A", "42", "c", "f", "m")})
    assert FacetJournal(tmp_path).load() == {("B", "42", "c", "f", "m"): {"task": "invoice"}}


def test_a_journal_left_by_an_older_release_is_ignored_and_dropped(tmp_path):
    old = tmp_path / "facets-999999999-deadbeef.jsonl"  # no such process: a dead run's journal
    old.write_text(json.dumps({"key": ["42", "c", "f", "m"], "facets": {"task": "refund"}}) + "\n"
                   + json.dumps({"key": ["A", "42", "c", "f", "m"], "facets": {"task": "kept"}}) + "\n")
    journal = FacetJournal(tmp_path)
    assert journal.load() == {("A", "42", "c", "f", "m"): {"task": "kept"}}
    journal.finish(stored=set())
    assert [json.loads(line)["key"] for line in old.read_text().splitlines()] == [["A", "42", "c", "f", "m"]]
