"""Resources: the store and the settings, as Dagster resources the launchpad shows and edits.

Assets, sensors and jobs take both from here instead of closing over a Settings object, so a
run's configuration is visible (and overridable) per run in the UI. Settings that shape the
graph itself (partitions_start, the facet list, the cron and the sensor interval) are read once
when the definitions are built; changing them in the launchpad does not re-partition.
"""

from __future__ import annotations

import functools
import typing

from dagster import Config, ConfigurableResource
from pydantic import BaseModel, Field, create_model

from ..config import Settings
from ..store import Store, open_store


class TopicsStoreResource(ConfigurableResource):
    """The product's store; the one place the Dagster layer opens it."""

    database: str = Field(description="The store's database: a DuckDB file path.")
    lock_wait_s: float = Field(default=300.0, description="How long a writer waits out another process's write "
                                                          "lock (jittered backoff) before it fails.")

    def get_store(self, lock_wait_s: float | None = None) -> Store:
        """The Store opens the file itself so that two runs at once both finish (see Store)."""
        wait = self.lock_wait_s if lock_wait_s is None else lock_wait_s
        return open_store(self.database, lock_wait_s=wait)


def _is_model(annotation: typing.Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _mirror(model: type[BaseModel], base: type, name: str, values: dict | None = None) -> type:
    """A Dagster config class mirroring a settings model field for field (types, descriptions).

    Generated, so a setting added to config.py shows up in the launchpad with no second list.
    With `values`, they become the field defaults: Dagster replaces a configured resource's whole
    config when a run gives any, so only defaults keep the settings a launchpad edit leaves out."""
    fields: dict[str, typing.Any] = {}
    for key, f in model.model_fields.items():
        annotation = f.annotation
        if _is_model(annotation):
            sub = _mirror(annotation, Config, f"{annotation.__name__.removesuffix('Settings')}Config",
                          values[key] if values else None)
            fields[key] = (sub, Field(default_factory=sub, description=f.description))
            continue
        if typing.get_origin(annotation) is list and _is_model(item := typing.get_args(annotation)[0]):
            annotation = list[_item_config(item)]
        fields[key] = (annotation, Field(default=values[key], description=f.description) if values else f)
    doc = model.__doc__ if base is Config else base.__doc__
    return create_model(name, __base__=base, __module__=__name__, __doc__=doc, **fields)


@functools.cache
def _item_config(model: type[BaseModel]) -> type:
    return _mirror(model, Config, f"{model.__name__}Config")


class _SettingsResource(ConfigurableResource):
    """Every setting of topics.yaml as resource config; `get_settings()` turns it back into Settings."""

    def get_settings(self) -> Settings:
        return Settings.model_validate({key: getattr(self, key) for key in Settings.model_fields},
                                       from_attributes=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> _SettingsResource:
        """A resource whose launchpad defaults are these settings."""
        return _mirror(Settings, cls, cls.__name__, settings.model_dump())()


TopicsSettingsResource = _mirror(Settings, _SettingsResource, "TopicsSettingsResource", Settings().model_dump())

# Resource keys the assets, sensors and jobs ask for.
STORE = "store"
SETTINGS = "settings"


def build_resources(settings: Settings) -> dict:
    return {STORE: TopicsStoreResource(database=settings.database_path),
            SETTINGS: TopicsSettingsResource.from_settings(settings)}
