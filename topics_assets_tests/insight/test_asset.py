"""The topic_stats asset and its trends check, materialized through Dagster's testing APIs on each backend."""

from dagster import AssetCheckSeverity, instance_for_test, materialize

from topics_assets.defs.assets import build_assets
from topics_assets.defs.resources import build_resources
from topics_assets.defs.runner import RANGE_END, RANGE_START
from topics_assets.store import open_store

from .test_stage import DAYS, build


def _run(settings, days):
    assets = build_assets(settings)
    by_name = {a.key.to_user_string(): a for a in assets}
    with instance_for_test() as instance:
        return materialize([by_name["classifications"], by_name["topic_stats"]], instance=instance,
                           resources=build_resources(settings), tags={RANGE_START: days[0], RANGE_END: days[-1]})


def test_topic_stats_check_warns_on_the_incident_day(backend_settings):
    settings = backend_settings
    settings.facets = ["task"]
    store = open_store(settings.database_path)
    build(store, settings)
    result = _run(settings, DAYS)
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert [c.check_name for c in checks] == ["task_trends"]
    check = checks[0]
    assert not check.passed and check.severity == AssetCheckSeverity.WARN
    meta = {k: v.value for k, v in check.metadata.items()}
    assert meta["day"] == DAYS[-1] and meta["alerts"] == 3
    spiking = {(a["topic_id"], a["kind"]) for a in meta["spiking_topics"]["shop"]}
    assert spiking == {("task-003", "rising"), ("task-003", "failing"), ("task-005", "new")}
    # Each day partition carries its own figures; steady days found nothing.
    mats = [m for m in result.get_asset_materialization_events()
            if m.materialization.asset_key.to_user_string() == "topic_stats"]
    assert len(mats) == len(DAYS)
    per_day = {m.partition: m.materialization.metadata for m in mats}
    assert per_day[DAYS[0]]["traces"].value == {"shop/task": 100}
    assert per_day[DAYS[-2]]["alerts"].value == [] and len(per_day[DAYS[-1]]["alerts"].value) == 3
    assert len(store.load_alerts()) == 3

    # A steady last day: the check passes (and still says which day it looked at).
    calm = _run(settings, DAYS[:-1])
    check = calm.get_asset_check_evaluations()[0]
    assert check.passed and check.metadata["day"].value == DAYS[-2]
