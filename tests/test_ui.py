"""The office's Dagster UI: the real webserver on 127.0.0.1 serves the asset graph with one partition per city."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from dagster import DagsterInstance

from kouiki.members import load_members
from kouiki.settings import REPO_ROOT, get_paths
from pipelines.main_run import dagster_instance, sync_partitions


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _graphql(port: int, query: str) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def test_webserver_shows_city_partitions(kouiki_home: Path) -> None:
    instance: DagsterInstance = dagster_instance(get_paths())
    sync_partitions(instance, load_members())
    port = _free_port()
    webserver = Path(sys.executable).parent / "dagster-webserver"
    proc = subprocess.Popen(
        [str(webserver), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO_ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,   # dagster ignores SIGINT when backgrounded: stop the whole group
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                data = _graphql(port, '{ assetNodeOrError(assetKey: {path: ["lake", "aed"]}) '
                                      "{ ... on AssetNode { partitionKeys groupName } } }")
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(1)
        node = data["data"]["assetNodeOrError"]
        assert node["groupName"] == "lake"
        assert sorted(node["partitionKeys"]) == sorted(m.code for m in load_members())
        graph = _graphql(port, "{ assetNodes { assetKey { path } dependencyKeys { path } } }")
        deps = {"/".join(n["assetKey"]["path"]): {"/".join(d["path"]) for d in n["dependencyKeys"]}
                for n in graph["data"]["assetNodes"]}
        assert "intake/uploads" in deps["lake/aed"]
        assert "lake/aed" in deps["staging/aed"]
        assert "staging/aed" in deps["conformed/aed"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
