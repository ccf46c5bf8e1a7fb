"""The one place where kouiki's Dagster definitions are assembled (the code location of workspace.yaml).

Each stage builds its own definitions in its module under ``assets/`` (intake, lake, models, publish, anonymise:
``definitions()``); here they get their automation conditions and are merged with the jobs, sensors, resources
and executor that span stages. ``tests/data/asset_graph.json`` is the reviewed snapshot of the result.

Loading must stay fast (the daemon, the UI and every run load it): modules imported here import heavy
libraries (Great Expectations, DuckDB, sqlglot, pandas, scipy) inside the functions that use them, and the schema
registry and parsed models come from ``kouiki.file_cache`` while their files are unchanged.
"""

from __future__ import annotations

from dagster import Definitions

from assets import anonymise, intake, lake, models, publish
from assets.resources import KouikiHome
from pipelines.automation import automated, automation_sensors, load_settings
from pipelines.executors import configured_executor
from pipelines.jobs import anonymise_personal, ingest_city, publish_region
from pipelines.sensors import member_partitions_sensor, upload_sensor

STAGES = (intake, lake, models, publish, anonymise)

defs = Definitions.merge(
    *(automated(stage.definitions()) for stage in STAGES),
    Definitions(
        jobs=[ingest_city, publish_region, anonymise_personal],
        sensors=[member_partitions_sensor, upload_sensor, *automation_sensors(load_settings())],
        resources={"kouiki": KouikiHome.from_env()},   # the settings, as EnvVar fields (assets/resources.py)
        # one process per run, not one per step: each step process would load these definitions again (seconds),
        # and a city's run has a step per dataset; runs are what the queue runs side by side
        executor=configured_executor(),   # that one, unless KOUIKI_EXECUTOR says otherwise (pipelines/executors.py)
    ),
)
