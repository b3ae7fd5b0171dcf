"""The code location: `dagster dev -w workspace.yaml` loads `defs` from here."""

from __future__ import annotations

from dagster import Definitions

from .config import Settings, load_settings
from .defs.adhoc import build_adhoc_job
from .defs.alerts import build_alert_resources, build_alert_sensor
from .defs.assets import build_assets
from .defs.automation import build_automation
from .defs.jobs import build_jobs
from .defs.partitions import with_first_day
from .defs.resources import build_resources
from .defs.spool import build_spool_sensor


def build_defs(settings: Settings) -> Definitions:
    settings = with_first_day(settings)
    sensors, schedules = build_automation(settings)
    return Definitions(
        assets=build_assets(settings),
        jobs=[*build_jobs(settings), build_adhoc_job()],
        sensors=[*sensors, build_spool_sensor(settings), build_alert_sensor(settings)],
        schedules=schedules,
        resources={**build_resources(settings), **build_alert_resources(settings)},
    )


defs = build_defs(load_settings())
