"""The one place where kouiki's Dagster definitions are assembled (the code location of workspace.yaml).

Loading must stay fast (the daemon, the UI and every run load it): modules imported here import heavy
libraries (Great Expectations, pandas, scipy) inside the functions that use them, not at module level.
"""

from __future__ import annotations

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

from assets import anonymise as anonymise_assets
from assets import intake as intake_assets
from assets import lake as lake_assets
from assets import publish as publish_assets
from assets.models import build_model_assets
from pipelines.automation import automation_sensors, load_settings, with_automation
from pipelines.executors import configured_executor
from pipelines.jobs import anonymise_personal, ingest_city, publish_region
from pipelines.resources import KouikiHome
from pipelines.sensors import member_partitions_sensor, upload_sensor

defs = Definitions(
    assets=with_automation([
        *load_assets_from_modules([intake_assets, lake_assets, publish_assets, anonymise_assets]),
        *build_model_assets(),
    ]),
    asset_checks=load_asset_checks_from_modules([lake_assets, anonymise_assets]),
    jobs=[ingest_city, publish_region, anonymise_personal],
    sensors=[member_partitions_sensor, upload_sensor, *automation_sensors(load_settings())],
    resources={"kouiki": KouikiHome()},
    # one process per run, not one per step: each step process would load these definitions again (seconds),
    # and a city's run has a step per dataset; runs are what the queue runs side by side
    executor=configured_executor(),   # that one, unless KOUIKI_EXECUTOR says otherwise (pipelines/executors.py)
)
