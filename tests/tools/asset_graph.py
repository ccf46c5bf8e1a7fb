"""A snapshot of kouiki's Dagster definitions that a person can review in a diff: every asset with its group,
dependencies, partitions, pool, automation and checks, and the jobs and sensors (issue 18 item 2).

    cd tests && ../.venv/bin/python -m tools.asset_graph > data/asset_graph.json    # after a deliberate change

The snapshot is taken in a fresh interpreter with an empty ``KOUIKI_HOME`` (a home's own datasets add assets).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SNAPSHOT = REPO / "tests" / "data" / "asset_graph.json"


def describe(defs: Any) -> dict[str, Any]:
    """The reviewable shape of a Definitions object (sorted, no object ids)."""
    graph = defs.resolve_asset_graph()
    assets: dict[str, Any] = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        partitions = node.partitions_def
        condition = node.automation_condition
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "partitions": _partitions(partitions),
            "pools": sorted(node.pools or ()),
            "automation": condition.get_label() if condition is not None else None,
            "checks": sorted(c.name for c in node.check_keys),
            "kinds": sorted(node.kinds),
        }
    return {
        "assets": assets,
        "jobs": sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")),
        "sensors": sorted(s.name for s in defs.sensors or []),
        "resources": sorted(defs.resources or {}),
    }


def _partitions(partitions: Any) -> str | None:
    if partitions is None:
        return None
    name = getattr(partitions, "name", None)
    return f"{type(partitions).__name__}({name})" if name else type(partitions).__name__


def snapshot() -> dict[str, Any]:
    """The current definitions' shape, computed in a fresh interpreter with an empty kouiki home."""
    with tempfile.TemporaryDirectory(prefix="kouiki-graph-") as home:
        env = {**os.environ, "KOUIKI_HOME": home, "DAGSTER_HOME": str(Path(home) / "dagster")}
        env.pop("KOUIKI_SCHEMAS", None)
        code = ("import json, sys; from pipelines.definitions import defs; from tools.asset_graph import describe; "
                "print(json.dumps(describe(defs), ensure_ascii=False, indent=1, sort_keys=True))")
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "tests"), env.get("PYTHONPATH", "")])
        done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                              check=True, timeout=300)
    return dict(json.loads(done.stdout))


def to_text(shape: dict[str, Any]) -> str:
    """One line per asset, so that a diff shows exactly which asset changed and how."""
    lines = ["{", ' "assets": {']
    items = sorted(shape["assets"].items())
    for n, (key, node) in enumerate(items):
        comma = "," if n < len(items) - 1 else ""
        lines.append(f"  {json.dumps(key)}: {json.dumps(node, ensure_ascii=False, sort_keys=True)}{comma}")
    lines.append(" },")
    rest = [k for k in sorted(shape) if k != "assets"]
    for n, key in enumerate(rest):
        comma = "," if n < len(rest) - 1 else ""
        lines.append(f" {json.dumps(key)}: {json.dumps(shape[key], ensure_ascii=False)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(to_text(snapshot()))
