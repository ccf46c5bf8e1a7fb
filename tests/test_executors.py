"""KOUIKI_EXECUTOR picks the executor of kouiki's runs (pipelines/executors.py); no broker needed here.

The Celery executor itself, on a real Redis broker and two workers, is tests/test_distributed.py
(`make test-distributed`)."""

from __future__ import annotations

from typing import Any

import pytest
from dagster import ExecutorDefinition, in_process_executor, multiprocess_executor
from dagster._core.definitions.definition_config_schema import ConfiguredDefinitionConfigSchema

from kouiki.errors import ConfigError
from pipelines.executors import (
    BACKEND_ENV,
    BROKER_ENV,
    EXECUTOR_ENV,
    ExecutorConfigError,
    celery_worker,
    configured_executor,
)

BROKER = "redis://:s3cret-password@10.0.0.5:6379/0"


def test_default_is_in_process_as_before() -> None:
    assert configured_executor({}) is in_process_executor
    assert configured_executor({EXECUTOR_ENV: "  "}) is in_process_executor
    assert configured_executor({EXECUTOR_ENV: "multiprocess"}) is multiprocess_executor


def test_kouikis_definitions_use_the_configured_executor() -> None:
    from pipelines.definitions import defs

    assert defs.executor is configured_executor()   # the environment of this test run: unset → in process


def test_celery_reads_the_urls_when_a_run_starts_not_when_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The URLs (and their passwords) are references to the variables, resolved when Dagster processes the
    executor's config for a run: never values in the definitions. On a real broker: tests/test_distributed.py."""
    monkeypatch.delenv(BROKER_ENV, raising=False)
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    executor = configured_executor({EXECUTOR_ENV: "celery", BROKER_ENV: BROKER})
    assert executor.name == "celery"
    unresolved = run_start_config(executor)
    assert not unresolved.success and BROKER_ENV in str(unresolved.errors)   # not in this environment (yet)
    monkeypatch.setenv(BROKER_ENV, BROKER)
    resolved = run_start_config(executor)
    assert resolved.success and resolved.value is not None
    config = resolved.value["config"]
    assert (config["broker"], config["backend"]) == (BROKER, BROKER)   # no backend given: results on the broker
    monkeypatch.setenv(BACKEND_ENV, "redis://:pw@10.0.0.6:6379/1")
    separate = run_start_config(configured_executor({EXECUTOR_ENV: "celery", BROKER_ENV: BROKER, BACKEND_ENV: "x"}))
    assert separate.value is not None and separate.value["config"]["backend"] == "redis://:pw@10.0.0.6:6379/1"


def run_start_config(executor: ExecutorDefinition) -> Any:
    """The executor's config as Dagster resolves it for a run (the result of ``.configured``'s schema)."""
    schema = executor.config_schema
    assert isinstance(schema, ConfiguredDefinitionConfigSchema)
    return schema.resolve_config({})


def test_celery_without_a_broker_or_an_unknown_executor_is_one_clear_line() -> None:
    with pytest.raises(ExecutorConfigError, match=f"{EXECUTOR_ENV}=celery needs {BROKER_ENV}") as missing:
        configured_executor({EXECUTOR_ENV: "celery"})
    assert "が必要です" in str(missing.value)
    # the name is checked by the settings table (kouiki/settings.py), as every variable's value is
    with pytest.raises(ConfigError, match=r"KOUIKI_EXECUTOR='k8s': .* is not an executor: use one of in_process, "
                                          "multiprocess"):
        configured_executor({EXECUTOR_ENV: "k8s"})


def test_worker_command_keeps_the_password_out_of_its_arguments() -> None:
    command, env = celery_worker("kouiki-1", {BROKER_ENV: BROKER, BACKEND_ENV: "redis://:pw@10.0.0.5:6379/1"},
                                 python="/srv/kouiki/.venv/bin/python")
    assert command[:5] == ["/srv/kouiki/.venv/bin/python", "-m", "celery", "-A", "dagster_celery.app"]
    assert command[command.index("-Q"):command.index("-Q") + 2] == ["-Q", "dagster"]
    assert "kouiki-1@%h" in command
    assert not any("s3cret" in part or "pw@" in part for part in command)
    assert env["BROKER_URL"] == BROKER and env["RESULT_BACKEND"] == "redis://:pw@10.0.0.5:6379/1"
    with pytest.raises(ExecutorConfigError):
        celery_worker("kouiki-1", {})
