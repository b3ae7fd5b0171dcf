"""`topics report`: one HTML file with the explorer's views, opened from file:// in chromium with every
request but file: aborted; it shows the store's topics, a topic lists its traces, a trace its text, and
what the file bounds is said on the page."""

import json
import re

import pytest

from topics_assets.explore.report import read_payload, write_report

from .browser import browser_page
from .conftest import PROJECT


@pytest.fixture(scope="session")
def report_file(demo_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    info = write_report(demo_store, out)
    return out, info


def _payload(path) -> dict:
    return read_payload(path.read_text())


def test_report_is_one_file_that_loads_nothing(report_file, demo_store):
    path, info = report_file
    html = path.read_text()
    assert 'src="' not in html.split("<script", 1)[0] and "static/app" not in html  # CSS and JS are inline
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert not re.search(r"""(?:src|href)=["']https?:""", html)
    payload = _payload(path)
    assert info["n_maps"] == len(demo_store.map_generations()) == 3  # one generation of each text facet
    assert info["n_points"] == 3 * 240 and info["bytes"] == path.stat().st_size
    # Each topic page lists at most traces_per_topic traces and has their trace pages.
    topic_pages = [v for k, v in payload["answers"].items() if json.loads(k)[0] == "topic"]
    listed = {t["trace_id"] for p in topic_pages for t in p["traces"]}
    assert max(len(p["traces"]) for p in topic_pages) == info["traces_per_topic"] == 20
    traces = {json.loads(k)[1][1][1] for k in payload["answers"] if json.loads(k)[0] == "trace"}
    assert traces == listed and info["n_traces"] == len(listed)


def test_report_in_the_browser_offline(report_file, demo_store):
    path, _ = report_file
    gen = demo_store.latest_generation(PROJECT, "task")
    topics = demo_store.load_topics(PROJECT, "task", gen)
    with browser_page(loopback=False) as page:
        page.goto(path.as_uri() + f"#/?project={PROJECT}&facet=task")
        page.wait_for_selector("canvas#map[data-drawn]")
        assert int(page.get_attribute("canvas#map", "data-drawn")) == len(demo_store.map_points(PROJECT, "task", gen))
        rows = page.locator("#topics-table tbody tr[data-topic]")
        shown = [rows.nth(i).get_attribute("data-topic") for i in range(rows.count())]
        assert set(shown) == set(topics.topic_id) | {"no_match"}
        table = page.inner_text("#topics-table")
        assert all(name in table for name in topics.name)
        assert "20 closest traces per topic" in page.inner_text("#report-note")
        assert page.locator("#f-start").is_disabled()
        page.select_option("#overlay", "failure")  # the overlays recolour the same points
        assert "failed" in page.inner_text("#legend") and page.get_attribute("canvas#map", "data-drawn") == "240"
        page.wait_for_selector("canvas#map[data-texts]")  # the tooltips' texts are in the file too

        # A topic lists its closest traces, as the store has them; a trace shows its text.
        first = rows.first
        topic_id = first.get_attribute("data-topic")
        first.locator("a").click()
        page.wait_for_selector("#traces-table tbody tr[data-trace]")
        listed = page.locator("#traces-table tbody tr[data-trace]")
        expected = demo_store.topic_traces(PROJECT, "task", gen, topic_id, limit=20)
        assert [listed.nth(i).get_attribute("data-trace") for i in range(listed.count())] == expected.trace_id.tolist()
        trace_id = listed.first.get_attribute("data-trace")
        listed.first.locator("a").click()
        page.wait_for_selector("#trace-text")
        assert page.inner_text("#trace-id") == trace_id
        content = demo_store.trace_detail(PROJECT, trace_id)["trace"].content[0]
        assert page.inner_text("#trace-text").strip()[:200] == content.strip()[:200]

        # The other maps of the file are a select away.
        page.goto(path.as_uri() + "#/")
        page.wait_for_selector("canvas#map[data-drawn]")
        page.select_option("#f-facet", "issues")
        page.wait_for_function("document.querySelector('h1').textContent.includes('issues')")
        page.wait_for_selector("canvas#map[data-drawn]")
        # A trace the report does not hold says so instead of failing.
        page.goto(path.as_uri() + f"#/trace/nope?project={PROJECT}&facet=task")
        page.wait_for_selector("text=closest traces per topic only")
        assert not page.errors, page.errors
        assert not page.blocked, page.blocked


def test_report_cli(demo_store, topics, tmp_path, monkeypatch):
    monkeypatch.setenv("TOPICS_DATABASE", demo_store.database)
    out = tmp_path / "r.html"
    r = topics("report", "--out", str(out), "--facet", "task", "--traces-per-topic", "2", "--text-chars", "30")
    assert r.exit_code == 0, r.output
    answers = _payload(out)["answers"]
    kinds = [json.loads(k)[0] for k in answers]
    assert kinds.count("overview") == 1 and kinds.count("points") == 1
    points = next(v for k, v in answers.items() if json.loads(k)[0] == "points")
    texts = next(v for k, v in answers.items() if json.loads(k)[0] == "point_texts")
    assert len(texts["text"]) == points["n"] and max(len(t) for t in texts["text"]) <= 30
    assert all(len(v["traces"]) <= 2 for k, v in answers.items() if json.loads(k)[0] == "topic")
    day = points["days"][0]
    r = topics("report", "--out", str(out), "--facet", "task", "--start", day, "--end", day)
    assert r.exit_code == 0, r.output
    ov = next(v for k, v in _payload(out)["answers"].items() if json.loads(k)[0] == "overview")
    assert ov["days"] == [day] and ov["start"] == day
    r = topics("report", "--out", str(out), "--facet", "nope")
    assert r.exit_code == 1 and "no topic map to report" in r.output and "shop/task" in r.output
    r = topics("report", "--out", str(out), "--start", "2026-13-01")
    assert r.exit_code == 2 and "not a day" in r.output


def test_plain_json_report_holds_the_same_and_cannot_end_its_script(demo_store, report_file, tmp_path):
    from topics_assets.explore.report import _json_for_script

    info = write_report(demo_store, tmp_path / "plain.html", compress=False, facets=["task"])
    plain = read_payload((tmp_path / "plain.html").read_text())
    packed = _payload(report_file[0])["answers"]
    assert plain["info"]["n_points"] == 240 == info["n_points"]
    assert all(packed[k] == v for k, v in plain["answers"].items() if json.loads(k)[0] != "maps")
    nasty = {"text": "</script><script>alert(1)</script>\u2028<!--"}
    text = _json_for_script(nasty)
    assert "</" not in text and "<!--" not in text and "\u2028" not in text and json.loads(text) == nasty
