"""How long loading kouiki's Dagster definitions takes: every run, the daemon's code server and the UI load
them. Warm (bytecode compiled, files in the page cache): the median of ``--repeats`` runs of

  * ``dagster definitions validate -w workspace.yaml`` (the whole command, as the office runs it), and
  * ``python -c "import pipelines.definitions"`` (wall time), with ``-X importtime``'s cumulative figure and
    the heaviest top-level packages it imported.

Beside it, the same command on a one-asset project (Dagster's own floor on this machine: the CLI, the instance,
the code server) is measured alternately with kouiki's, so that the load of the moment hits both alike; kouiki's
share is the difference. Target: validate under 3 s. Results in bench/results/definitions.json.

Run: .venv/bin/python bench/bench_definitions.py [--repeats 3] [--out PATH]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH_DIR)]

from common import (  # noqa: E402
    REPO,
    RESULTS_DIR,
    Target,
    figure,
    figures_table,
    load_average,
    machine_facts,
    median_of,
    write_result,
)

IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "definitions.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kouiki-defs-") as tmp:
        env = {**os.environ, "KOUIKI_HOME": tmp, "DAGSTER_HOME": tmp, "DAGSTER_DISABLE_TELEMETRY": "1"}
        bin_dir = Path(sys.executable).parent
        validate = [str(bin_dir / "dagster"), "definitions", "validate", "-w", "workspace.yaml"]
        floor_module = Path(tmp) / "one_asset_defs.py"
        floor_module.write_text(ONE_ASSET, encoding="utf-8")
        floor = [str(bin_dir / "dagster"), "definitions", "validate", "-f", str(floor_module)]
        importing = [sys.executable, "-c", "import pipelines.definitions"]
        wall(validate, env)   # warm-up: bytecode, page cache, kouiki's file cache
        wall(floor, env)
        pairs = [(wall(validate, env), wall(floor, env)) for _ in range(args.repeats)]
        validate_s = median_of([ours for ours, _ in pairs])
        floor_s = median_of([theirs for _, theirs in pairs])
        import_s = median_of([wall(importing, env) for _ in range(args.repeats)])
        cumulative, heaviest = import_profile(env)
    result: dict[str, Any] = {
        "bench": "definitions", "machine": machine_facts(), "load_average_after": load_average(),
        "heaviest_packages_s": heaviest,
        "figures": [
            figure("dagster definitions validate (warm, median)", validate_s, "s", target=Target("<", 3.0, unit="s")),
            figure("the same on a one-asset project (Dagster's floor, median)", floor_s, "s"),
            figure("kouiki's share (difference of the medians)", round(validate_s - floor_s, 2), "s"),
            figure("import pipelines.definitions (wall, median)", import_s, "s"),
            figure("import pipelines.definitions (-X importtime, cumulative)", cumulative, "s"),
        ],
    }
    write_result(result, args.out)
    print(figures_table("definitions", result["figures"]))
    print("heaviest packages (s):", heaviest)


ONE_ASSET = """import dagster as dg


@dg.asset
def one() -> int:
    return 1


defs = dg.Definitions(assets=[one])
"""


def wall(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, cwd=REPO, env=env, check=True, capture_output=True)
    return round(time.perf_counter() - started, 2)


def import_profile(env: dict[str, str]) -> tuple[float, dict[str, float]]:
    """``-X importtime``: cumulative seconds of pipelines.definitions and self time per top-level package."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import pipelines.definitions"], cwd=REPO,
                          env=env, check=True, capture_output=True, text=True)
    per_package: Counter[str] = Counter()
    cumulative = 0.0
    for line in done.stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if not match:
            continue
        per_package[match.group(4).split(".")[0]] += int(match.group(1))
        if match.group(4) == "pipelines.definitions":
            cumulative = int(match.group(2)) / 1e6
    return round(cumulative, 2), {name: round(us / 1e6, 2) for name, us in per_package.most_common(8)}


if __name__ == "__main__":
    main()
