"""What makes ``kouiki`` start fast (issue 17: ``kouiki inspect`` of a small file in under 2 s): each command
imports what it needs when it runs, and nothing the others need.

* The office's commands load when used (:class:`KouikiGroup`, :data:`LAZY_COMMANDS`).
* typer's parameter conversion without pydantic for text, paths and flags (:func:`install_plain_conversion`).
* pyarrow told that pandas is absent in ``kouiki inspect``'s process (:func:`pyarrow_without_pandas`).

tests/test_inspect_speed.py asserts which modules ``kouiki inspect`` ends up with (no Great Expectations, pandas,
SQLAlchemy, Dagster, pydantic, nor openpyxl for a CSV).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from typer import _click as click  # typer 0.29 vendors click
from typer._coercion import RuntimeParam, build_runtime_param
from typer._param_types import coerce_cli_path
from typer.core import TyperGroup
from typer.core import _TyperParameter as TyperParameter
from typer.main import get_group

# The office's commands (commands/office_cli.py, commands/mappings_cli.py) import the catalog (SQLAlchemy), the
# publication index and the mapping code: about a second that `kouiki inspect` must not pay. Each module is
# imported when one of its commands is run or listed (`kouiki --help`). Command name → "module:Typer app";
# tests/test_inspect_speed.py checks this list against the commands the modules define.
LAZY_COMMANDS = {
    **dict.fromkeys(("members", "tokens", "upload", "status", "rerun"), "commands.office_cli:office_app"),
    "mappings": "commands.mappings_cli:mappings_app",
}


def lazy_commands(name: str) -> dict[str, click.Command]:
    """The click commands of the Typer app that defines command ``name`` (see LAZY_COMMANDS): the app's own
    commands, or the app itself as the group ``name`` when it is a group of its own (``mappings``)."""
    module, _, attribute = LAZY_COMMANDS[name].partition(":")
    group = get_group(getattr(importlib.import_module(module), attribute))
    if name in group.commands:
        return dict(group.commands)
    group.name = name
    return {name: group}


class LazyCommands(MutableMapping[str, click.Command]):
    """A group's commands where some are imported on first use: looking one up (or listing them all, as
    ``--help`` does) imports its module; ``kouiki inspect`` imports none of them."""

    def __init__(self, loaded: MutableMapping[str, click.Command], lazy: list[str],
                 load: Callable[[str], dict[str, click.Command]]) -> None:
        self.loaded = dict(loaded)
        self.lazy = [name for name in lazy if name not in self.loaded]
        self.load = load

    def __getitem__(self, name: str) -> click.Command:
        if name not in self.loaded and name in self.lazy:
            for found, command in self.load(name).items():
                self.loaded.setdefault(found, command)
            self.lazy = [n for n in self.lazy if n not in self.loaded]
        return self.loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self.loaded[name] = command

    def __delitem__(self, name: str) -> None:
        self.lazy = [n for n in self.lazy if n != name]
        self.loaded.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter([*self.loaded, *self.lazy])

    def __len__(self) -> int:
        return len(self.loaded) + len(self.lazy)

    def __contains__(self, name: object) -> bool:
        return name in self.loaded or name in self.lazy


class KouikiGroup(TyperGroup):
    """The ``kouiki`` group: its own commands at once, the office's ones (LAZY_COMMANDS) when used."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = LazyCommands(self.commands, list(LAZY_COMMANDS), lazy_commands)


# typer 0.29 converts every parameter it parses, the --help flag included, with a pydantic TypeAdapter: importing
# pydantic and building them is about a sixth of `kouiki inspect`. Text, paths and flags need none of it: they
# are converted here (a path with typer's own checks and messages), anything else by typer as before.
@dataclass(frozen=True)
class PlainConversion(RuntimeParam):
    """typer's conversion of one parameter, without pydantic when the value is text, a path or a flag."""

    descriptor: Any = None

    def _coerce_value(self, value: Any, param: Any, ctx: click.Context) -> Any:
        if self.annotation is Path and isinstance(value, str):
            return coerce_cli_path(Path(value), self.parameter_info, path_type=Path, param=param, ctx=ctx)
        if (self.annotation is str and isinstance(value, str)) or (self.annotation is bool
                                                                     and isinstance(value, bool)):
            return value
        return build_runtime_param(self.descriptor).coerce(value, param=param, ctx=ctx)


def _runtime_param(param: Any) -> RuntimeParam:
    """Replaces typer's ``_TyperParameter.get_runtime_param``: PlainConversion for text, paths and flags."""
    if param._runtime_param is None:
        descriptor, info = param.type_descriptor, param.type_descriptor.parameter_info
        plain = (descriptor.annotation in (str, Path, bool) and descriptor.file_annotation is None
                 and getattr(info, "parser", None) is None)     # a custom parser is typer's to call
        param._runtime_param = (PlainConversion(parameter_info=info, annotation=descriptor.annotation,
                                                descriptor=descriptor) if plain
                                else build_runtime_param(descriptor))
    return cast(RuntimeParam, param._runtime_param)


def install_plain_conversion() -> None:
    """typer's parameters converted by :func:`_runtime_param` from now on (in this process)."""
    if hasattr(TyperParameter, "get_runtime_param"):   # typer's internals, as of the pinned version (uv.lock)
        TyperParameter.get_runtime_param = _runtime_param  # type: ignore[method-assign,assignment]


def pyarrow_without_pandas() -> None:
    """Tell pyarrow, in this short-lived process, that pandas is not there: pyarrow imports pandas (half a
    second) the first time it converts any Python value (``pa.array``, ``to_numpy``, a compute function's
    scalar), only to check whether the value is a pandas object, and intake's reader converts many. Nothing
    ``kouiki inspect`` does hands pandas objects to pyarrow; a pyarrow call that needs pandas
    (``to_pandas``) still imports it, and so may any other library."""
    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    refuse = _RefusePandas()
    sys.meta_path.insert(0, refuse)
    try:
        pa.array([0])   # the first conversion: pyarrow tries pandas once and remembers it is not there
    finally:
        sys.meta_path.remove(refuse)


class _RefusePandas:
    """An import finder (sys.meta_path) under which ``import pandas`` fails, for one pyarrow call (above)."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname.split(".")[0] == "pandas":
            raise ImportError("pandas is not imported by kouiki inspect", name=fullname)
