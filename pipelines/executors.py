"""Which Dagster executor runs the steps of a run: chosen by configuration (the environment), not by code.

    KOUIKI_EXECUTOR         in_process (default) | multiprocess | celery
    KOUIKI_CELERY_BROKER    celery only: the broker's URL, e.g. redis://10.0.0.5:6379/0 (required)
    KOUIKI_CELERY_BACKEND   celery only: where workers put step results (default: the broker's URL)

``in_process`` (the default) runs every step of a run in the run's own process: each step process of the
multiprocess executor would load the definitions again (seconds), and a city's run has a step per dataset.
``celery`` sends each step to Celery workers (``dagster-celery``) listening on the broker; the workers may be on
other machines (docs/scale-out.md). The run queue is unchanged by the choice: it limits runs, not steps; the
``duckdb_warehouse`` pool is applied by every one of these executors before a step starts, from the instance.

The variables are rows of the settings table (kouiki/settings.py, ``settings.pipeline``), which reads and checks
them; the URLs are handed to Dagster by name and read by it when a run starts (its ``{"env": ...}`` config
source), so a password in them is never written into run config or into Dagster's records.
"""

from __future__ import annotations

from collections.abc import Mapping

from dagster import ExecutorDefinition, in_process_executor, multiprocess_executor

from kouiki.errors import ConfigError
from kouiki.settings import PipelineValues, Settings, environment

EXECUTOR_ENV = "KOUIKI_EXECUTOR"
BROKER_ENV = "KOUIKI_CELERY_BROKER"
BACKEND_ENV = "KOUIKI_CELERY_BACKEND"
CELERY_QUEUE = "dagster"   # dagster-celery's default queue: the workers must listen on it (-Q dagster)


class ExecutorConfigError(ConfigError):
    """KOUIKI_EXECUTOR names no executor, or celery lacks its broker (one line: variable, value, what to do)."""


def configured_executor(env: Mapping[str, str] | None = None) -> ExecutorDefinition:
    """The executor named by KOUIKI_EXECUTOR in ``env`` (default: the process environment); a name that is not
    an executor is the settings' one-line ConfigError."""
    pipeline = _pipeline(env)
    if pipeline.executor == "multiprocess":
        return multiprocess_executor
    if pipeline.executor == "celery":
        return celery_executor(pipeline)
    return in_process_executor


def _pipeline(env: Mapping[str, str] | None) -> PipelineValues:
    return Settings.from_env(env).pipeline


def celery_executor(pipeline: PipelineValues) -> ExecutorDefinition:
    """dagster-celery's executor on the broker of KOUIKI_CELERY_BROKER (results: KOUIKI_CELERY_BACKEND or the
    broker). Imported here, not at module level: celery is only loaded where it is used."""
    from dagster_celery import celery_executor as dagster_celery_executor

    if not pipeline.celery_broker:
        raise ExecutorConfigError(
            f"{EXECUTOR_ENV}=celery には {BROKER_ENV}（例: redis://127.0.0.1:6379/0）が必要です / "
            f"{EXECUTOR_ENV}=celery needs {BROKER_ENV}, the broker's URL (e.g. redis://127.0.0.1:6379/0)")
    backend = BACKEND_ENV if pipeline.celery_backend else BROKER_ENV
    return dagster_celery_executor.configured({"broker": {"env": BROKER_ENV}, "backend": {"env": backend}})


def celery_worker(name: str, env: Mapping[str, str] | None = None,
                  python: str = "python") -> tuple[list[str], dict[str, str]]:
    """The command and environment that start one Celery worker for kouiki's steps (docs/scale-out.md):
    dagster-celery's task app on kouiki's broker and backend, one step at a time (``solo``: the step runs in the
    worker process itself; start one worker per core). The URLs go in the environment (``BROKER_URL``,
    ``RESULT_BACKEND``, read by celery's command line), not in the arguments that ``ps`` shows."""
    env = environment(env)
    pipeline = _pipeline(env)
    broker = pipeline.celery_broker
    if not broker:
        raise ExecutorConfigError(f"{BROKER_ENV} が未設定です / {BROKER_ENV} is not set: the broker's URL")
    env.update(BROKER_URL=broker, RESULT_BACKEND=pipeline.celery_backend or broker)
    command = [python, "-m", "celery", "-A", "dagster_celery.app", "worker", "-Q", CELERY_QUEUE,
               "-n", f"{name}@%h", "--pool", "solo", "--prefetch-multiplier", "1",
               "--without-gossip", "--without-mingle", "--loglevel", "INFO"]
    return command, env
