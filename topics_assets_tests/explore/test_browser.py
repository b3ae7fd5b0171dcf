"""The explorer in a real browser (chromium + Playwright) on a small demo store, with the network off
loopback blocked: the map draws its points, a topic lists its traces, a trace shows its text."""

import os

from .browser import browser_page


def _painted(page) -> int:
    """Canvas pixels that are not the background: the points really are on screen."""
    return page.evaluate("""() => {
        const c = document.getElementById('map');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] !== 251 || d[i + 1] !== 252 || d[i + 2] !== 253) n++;
        return n;
    }""")


def test_map_topic_and_trace_in_the_browser(demo_store, explorer_url):
    n_points = len(demo_store.map_points("shop", "task", 1))
    with browser_page() as page:
        page.goto(explorer_url + "#/?project=shop&facet=task")
        page.wait_for_selector("canvas#map[data-drawn][data-texts]")
        assert int(page.get_attribute("canvas#map", "data-drawn")) == n_points == 240
        assert _painted(page) > n_points  # each point is a few pixels
        topics = page.locator("#topics-table tbody tr[data-topic]")
        assert topics.count() >= 2
        assert page.locator("#treemap g[data-topic]").count() >= 2

        # Hovering a point shows its facet text.
        page.locator("canvas#map").scroll_into_view_if_needed()
        box = page.locator("canvas#map").bounding_box()
        spot = page.evaluate("""() => { const i = [...mapIndex.sx.keys()].find(k => mapIndex.sx[k] > 0);
                                        return [mapIndex.sx[i], mapIndex.sy[i], mapData.text[i]]; }""")
        page.mouse.move(box["x"] + spot[0], box["y"] + spot[1])
        page.wait_for_selector("#tooltip:not([hidden])")
        if os.environ.get("TOPICS_SCREENSHOT"):
            page.screenshot(path=os.environ["TOPICS_SCREENSHOT"], full_page=True)
        assert spot[2] in page.inner_text("#tooltip")

        # Overlays recolour the same points.
        page.select_option("#overlay", "failure")
        assert int(page.get_attribute("canvas#map", "data-drawn")) == n_points
        assert "failed" in page.inner_text("#legend")

        # A topic lists its traces; a trace shows its facets, outcome and preprocessed text.
        first = topics.first
        topic_id = first.get_attribute("data-topic")
        first.locator("a").click()
        page.wait_for_selector("#traces-table tbody tr[data-trace]")
        expected = demo_store.topic_traces("shop", "task", 1, topic_id)
        rows = page.locator("#traces-table tbody tr[data-trace]")
        assert rows.count() == len(expected) > 0
        assert page.locator("#nearest li").count() >= 1
        trace_id = rows.first.get_attribute("data-trace")
        rows.first.locator("a").click()
        page.wait_for_selector("#trace-text")
        detail = demo_store.trace_detail("shop", trace_id)
        assert page.inner_text("#trace-id") == trace_id
        text = page.inner_text("#trace-text")
        assert text.strip() and text.strip()[:200] == detail["trace"].content[0].strip()[:200]
        facets = page.inner_text("#facets-table")
        assert all(f in facets for f in detail["facets"].facet)
        assert page.locator("#outcome dl").count() == 1
        assert not page.errors, page.errors
        assert not page.blocked  # nothing was even asked of the network
