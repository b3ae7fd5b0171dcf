"""The store and the settings as Dagster resources: what the launchpad shows is what a run uses."""

from pathlib import Path

from dagster import DagsterInstance, Definitions, asset, materialize

from topics_assets.config import FacetSpec, Settings, load_settings
from topics_assets.definitions import build_defs
from topics_assets.defs.resources import TopicsSettingsResource, TopicsStoreResource, build_resources
from topics_assets.defs.runner import run_pending


def config_fields(resource) -> set[str]:
    return set(type(resource).to_config_schema().as_field().config_type.fields)


def test_the_settings_resource_carries_every_setting_and_gives_them_back():
    s = load_settings(env={})
    s.llm.model, s.gates.min_traces = "openai/gpt-4o-mini", 10
    s.facets = s.facets[:1] + [FacetSpec("mood", "How does the user feel?", "enum", ["happy", "sad"])]
    resource = TopicsSettingsResource.from_settings(s)
    assert resource.get_settings() == s
    assert config_fields(resource) == set(Settings.model_fields)
    llm_fields = type(resource).to_config_schema().as_field().config_type.fields["llm"].config_type.fields
    assert "max_in_flight" in llm_fields and "Retry-After" in llm_fields["backoff_base_s"].description


def test_run_config_overrides_what_the_asset_gets_and_keeps_the_rest(tmp_path):
    s = load_settings(env={"TOPICS_MIN_UNIQUE_FACETS": "10", "TOPICS_LLM_MAX_IN_FLIGHT": "3"})
    s.home = str(tmp_path)
    s.facets = s.facets[:2]
    seen = {}

    @asset
    def probe(store: TopicsStoreResource, settings: TopicsSettingsResource) -> None:
        seen["settings"], seen["database"] = settings.get_settings(), store.get_store().database

    resources = build_resources(s)
    defs = Definitions(assets=[probe], resources=resources)
    Definitions.validate_loadable(defs)
    assert materialize([probe], resources=resources).success
    assert seen["settings"] == s and seen["database"] == s.database_path
    override = {"resources": {"settings": {"config": {"gates": {"min_traces": 5}, "llm": {"model": "x/y"}}}}}
    assert materialize([probe], resources=resources, run_config=override).success
    got = seen["settings"]
    assert (got.gates.min_traces, got.llm.model) == (5, "x/y")
    # Dagster replaces a configured resource's config wholesale; the rest must stay as configured.
    assert got.model_copy(update={"gates": s.gates, "llm": s.llm}) == s
    assert (got.gates.min_unique_facets, got.llm.max_in_flight, got.facet_names) == (10, 3, ["task", "sentiment"])


def test_run_pending_defaults_to_the_store_and_settings_of_the_defs(settings):
    said = []
    summary = run_pending(build_defs(settings), DagsterInstance.ephemeral(), say=said.append)
    assert said == ["nothing ingested yet: run `topics ingest PATH...` first"] and summary.days == []
    assert Path(settings.database_path).exists()  # the store resource's file, under the settings' home
