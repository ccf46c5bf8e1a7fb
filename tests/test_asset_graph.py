"""The asset graph is what the data office sees in Dagster; a change to it (an asset, dependency, partitioning,
pool, automation or check added, lost or moved) must be deliberate: it shows as a diff of
``tests/data/asset_graph.json`` (issue 18 item 2). After an intended change, write the snapshot again:
``cd tests && ../.venv/bin/python -m tools.asset_graph > data/asset_graph.json``."""

from __future__ import annotations

import json

from tools.asset_graph import SNAPSHOT, snapshot, to_text


def test_the_asset_graph_matches_its_reviewed_snapshot() -> None:
    current = snapshot()
    expected = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    changed = sorted(k for k in current["assets"].keys() | expected["assets"].keys()
                     if current["assets"].get(k) != expected["assets"].get(k))
    assert not changed, ("asset graph changed (write the snapshot again if intended): "
                         + "; ".join(f"{k}: {expected['assets'].get(k)} -> {current['assets'].get(k)}"
                                     for k in changed[:5]))
    assert {k: v for k, v in current.items() if k != "assets"} == {k: v for k, v in expected.items() if k != "assets"}
    assert to_text(current) == SNAPSHOT.read_text(encoding="utf-8")


def test_the_snapshot_covers_every_stage() -> None:
    shape = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    groups = {node["group"] for node in shape["assets"].values()}
    assert {"intake", "lake", "staging", "conformed", "marts", "publish", "anonymise"} <= groups
    lake = [node for key, node in shape["assets"].items() if key.startswith("lake/")]
    assert lake and all(node["partitions"] == "DynamicPartitionsDefinition(member_cities)" for node in lake)
    assert all(node["pools"] == ["duckdb_warehouse"] for key, node in shape["assets"].items()
               if key.split("/")[0] in ("staging", "conformed", "marts"))
