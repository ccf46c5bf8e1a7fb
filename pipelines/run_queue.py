"""The run queue part of kouiki's dagster.yaml: runs wait for their turn instead of failing.

Dagster's instance (the default QueuedRunCoordinator, dequeued by the daemon that ``make ui`` starts) applies
it to every run launched by a sensor, the automation or the UI. ``kouiki run`` executes in its own process and
is not queued; its warehouse steps still wait for the ``duckdb_warehouse`` pool.
"""

from __future__ import annotations

import yaml

from pipelines.automation import CITY_TAG, WAREHOUSE_TAG, AutomationSettings


def run_queue_config(settings: AutomationSettings) -> dict[str, object]:
    """dagster.yaml sections: run queue with tag limits, pools, start retries, run retries, code server start
    timeout. (The code server's request timeout is an environment variable: see :func:`dagster_environment`.)"""
    return {
        "concurrency": {
            "pools": {"default_limit": 1},   # duckdb_warehouse: one step writing the DuckDB file
            "runs": {
                "max_concurrent_runs": settings.max_concurrent,
                "tag_concurrency_limits": [
                    {"key": CITY_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": settings.per_city},
                    {"key": WAREHOUSE_TAG, "limit": settings.warehouse_writers},
                ],
            },
        },
        # a run whose start request the code server did not answer goes back to the queue, never "failed"
        "run_queue": {"max_user_code_failure_retries": settings.start_retries,
                      "user_code_failure_retry_delay": settings.start_retry_delay_seconds},
        "run_retries": {"enabled": settings.max_retries > 0, "max_retries": settings.max_retries},
        "code_servers": {"local_startup_timeout": settings.code_server_start_timeout_seconds},
    }


def dagster_environment(settings: AutomationSettings) -> dict[str, str]:
    """Environment of the daemon and the UI: how long a request to the code server may take."""
    return {"DAGSTER_GRPC_TIMEOUT_SECONDS": str(settings.code_server_request_timeout_seconds)}


def run_queue_yaml(settings: AutomationSettings) -> str:
    return yaml.safe_dump(run_queue_config(settings), sort_keys=False, allow_unicode=True)
