"""The largest Python files and functions of the project: ``python scripts/sizes.py [N] [path …]``.

Lengths are lines from ``def`` to the last line of the body (decorators and docstrings included), so the figures
before and after a refactoring can be compared with one command.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGES = ("kouiki", "intake", "expectations", "warehouse", "publish", "assets", "pipelines", "anonymise",
            "portal", "service")


def sizes(roots: list[Path]) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(lines, file) of every file and (lines, file:function) of every function under ``roots``."""
    files, functions = [], []
    for path in sorted(p for root in roots for p in ([root] if root.is_file() else root.rglob("*.py"))):
        text = path.read_text(encoding="utf-8")
        files.append((len(text.splitlines()), str(path)))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                functions.append(((node.end_lineno or node.lineno) - first + 1, f"{path}:{node.name}"))
    return sorted(files, reverse=True), sorted(functions, reverse=True)


def main(argv: list[str]) -> None:
    top = int(argv[0]) if argv and argv[0].isdigit() else 10
    roots = [Path(a) for a in argv if not a.isdigit()] or [Path(p) for p in PACKAGES]
    files, functions = sizes(roots)
    lengths = sorted(n for n, _ in functions)
    print(f"{len(files)} files, {len(functions)} functions; median function {lengths[len(lengths) // 2]} lines, "
          f"{sum(n > 60 for n in lengths)} over 60")
    for title, rows in (("largest files", files), ("largest functions", functions)):
        print(f"\n{title}:")
        for n, name in rows[:top]:
            print(f"{n:6d}  {name}")


if __name__ == "__main__":
    main(sys.argv[1:])
