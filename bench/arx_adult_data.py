"""ARX's Adult benchmark data (arx-deidentifier/arx: data/adult.csv and data/adult_hierarchy_*.csv) under
bench/.data/arx-adult/, never in the repository.

The files come, in this order, from: the directory already holding them; a local copy of the ARX repository
(`--arx-source PATH` or KOUIKI_ARX_SOURCE: a git directory, read with `git show HEAD:data/…`, or a checkout
with a data/ folder); raw.githubusercontent.com when the network allows. When none works, `ensure_adult_data`
raises AdultDataMissing saying what was tried and how to provide the files.

Run: .venv/bin/python bench/arx_adult_data.py [--arx-source PATH]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / ".data" / "arx-adult"
ATTRIBUTES = (
    "age",
    "education",
    "marital-status",
    "native-country",
    "occupation",
    "race",
    "salary-class",
    "sex",
    "workclass",
)
FILES = ("adult.csv", *(f"adult_hierarchy_{name}.csv" for name in ATTRIBUTES))
RAW_URL = "https://raw.githubusercontent.com/arx-deidentifier/arx/master/data/{name}"
DOWNLOAD_TIMEOUT = 20.0


class AdultDataMissing(RuntimeError):
    """The Adult files are not here and could not be copied or downloaded."""


def ensure_adult_data(target: Path = DATA_DIR, source: Path | None = None) -> Path:
    """The directory holding every Adult file, filling it first if needed."""
    if _complete(target):
        return target
    target.mkdir(parents=True, exist_ok=True)
    tried: list[str] = []
    candidates = [source] if source else []
    if os.environ.get("KOUIKI_ARX_SOURCE"):
        candidates.append(Path(os.environ["KOUIKI_ARX_SOURCE"]))
    for candidate in candidates:
        try:
            _copy_from(candidate, target)
            return target
        except (OSError, subprocess.CalledProcessError) as error:
            tried.append(f"{candidate}: {error}")
    try:
        _download(target)
        return target
    except OSError as error:
        tried.append(f"{RAW_URL.format(name='…')}: {error}")
    raise AdultDataMissing(
        "ARX Adult データがありません / the ARX Adult data is missing from "
        f"{target}. Tried: {'; '.join(tried)}. Provide a copy of the arx-deidentifier/arx repository with "
        "--arx-source PATH (or KOUIKI_ARX_SOURCE), or put "
        f"{', '.join(FILES[:2])}, … into {target}."
    )


def _complete(directory: Path) -> bool:
    return all((directory / name).is_file() and (directory / name).stat().st_size > 0 for name in FILES)


def _copy_from(source: Path, target: Path) -> None:
    """From a checkout (data/ folder) or a bare git directory (git show HEAD:data/…)."""
    for name in FILES:
        if (source / "data" / name).is_file():
            content = (source / "data" / name).read_bytes()
        else:
            content = subprocess.run(
                ["git", "--git-dir", str(source), "show", f"HEAD:data/{name}"],
                check=True,
                capture_output=True,
                timeout=60,
            ).stdout
        if not content:
            raise OSError(f"data/{name} is empty in {source}")
        _write(target / name, content)


def _download(target: Path) -> None:
    for name in FILES:
        with urllib.request.urlopen(RAW_URL.format(name=name), timeout=DOWNLOAD_TIMEOUT) as response:
            content = response.read()
        if not content:
            raise OSError(f"{name}: empty download")
        _write(target / name, content)


def _write(path: Path, content: bytes) -> None:
    """Write beside, then rename: a half-written file never looks complete."""
    partial = path.with_suffix(path.suffix + ".part")
    partial.write_bytes(content)
    partial.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arx-source", type=Path, help="a git directory or checkout of arx-deidentifier/arx")
    args = parser.parse_args(argv)
    try:
        print(ensure_adult_data(source=args.arx_source))
    except AdultDataMissing as error:
        print(error, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
