"""In a real browser: a topic page shows its parent and the parent's children, and a topic renamed (and
one merged) before a regeneration still reads so after it."""

import os

from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from topics_assets.topics.curation import merge_topics, rename_topic
from topics_assets.topics.stage import classify_days, generate_topic_map

from .browser import browser_page, require_browser
from .conftest import PROJECT, build_demo_store, running_explorer


def test_topic_page_shows_parent_children_and_a_rename_that_survived_regeneration(tmp_path):
    require_browser()
    store, settings = build_demo_store(str(tmp_path / "home"), n_traces=160, days=2)
    topics = store.load_topics(PROJECT, "task", 1)
    keep, other, renamed = topics.topic_id[0], topics.topic_id[1], topics.topic_id[2]
    rename_topic(store=store, project=PROJECT, facet="task", topic_id=renamed, name="Renamed by a person")
    merge_topics(store=store, project=PROJECT, facet="task", keep=keep, other=other)
    generate_topic_map(store=store, settings=settings, project=PROJECT, facet="task", force=True,
                       reducer=PCA(n_components=5, random_state=0),
                       clusterer=KMeans(n_clusters=6, n_init=3, random_state=0))
    classify_days(store=store, settings=settings, days=store.days_with_traces())
    assert store.latest_generation(PROJECT, "task") == 2
    h = store.load_hierarchy(PROJECT, "task", 2)
    mine = h[h.topic_id == renamed].iloc[0]
    siblings = h.topic_id[h.parent_id == mine.parent_id].tolist()
    with running_explorer(store) as url, browser_page() as page:
        page.goto(url + "#/?project=shop&facet=task")
        page.wait_for_selector("#topics-table tbody tr[data-topic]")
        shown = [page.locator("#topics-table tbody tr[data-topic]").nth(i).get_attribute("data-topic")
                 for i in range(page.locator("#topics-table tbody tr[data-topic]").count())]
        assert renamed in shown and keep in shown and other not in shown  # the merge held
        page.goto(url + f"#/topic/{renamed}?project=shop&facet=task")
        page.wait_for_selector("#parent-name")
        assert page.inner_text("#topic-name") == "Renamed by a person"
        assert page.inner_text("#parent-name") == mine.parent_name
        children = page.locator("#children li[data-topic]")
        assert sorted(children.nth(i).get_attribute("data-topic") for i in range(children.count())) == sorted(siblings)
        # A sibling is a link to its own page, which shows the same parent.
        sibling = next(s for s in siblings if s != renamed)
        page.locator(f'#children li[data-topic="{sibling}"] a').click()
        page.wait_for_selector(f'#children li[data-topic="{sibling}"] strong')  # its own page now
        assert page.inner_text("#parent-name") == mine.parent_name
        assert page.locator('#children li[data-topic="%s"] a' % renamed).inner_text() == "Renamed by a person"
        if os.environ.get("TOPICS_SCREENSHOT"):
            page.screenshot(path=os.environ["TOPICS_SCREENSHOT"], full_page=True)
        assert not page.errors, page.errors
        assert not page.blocked
