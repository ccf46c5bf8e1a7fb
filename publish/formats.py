"""Extra release formats written from DuckDB: JSON (an array of records) and GeoJSON (points)."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from kouiki.sql import literal, quote


def write_json(con: duckdb.DuckDBPyConnection, table: str, columns: list[str], target: Path) -> Path:
    """All rows as one JSON array of objects (UTF-8, keys = column names)."""
    names = ", ".join(quote(c) for c in columns)
    con.execute(f"COPY (SELECT {names} FROM {table}) TO {literal(str(target))} (FORMAT json, ARRAY true)")
    return target


def write_geojson(con: duckdb.DuckDBPyConnection, table: str, columns: list[str], lat: str, lon: str,
                  target: Path) -> Path:
    """A FeatureCollection of points (RFC 7946: [longitude, latitude]); rows without coordinates get a null
    geometry so that no record is silently left out."""
    props = ", ".join(f"{literal(c)}: {quote(c)}" for c in columns)
    feature = (
        "{'type': 'Feature', "
        f"'geometry': CASE WHEN TRY_CAST({quote(lat)} AS DOUBLE) IS NULL OR TRY_CAST({quote(lon)} AS DOUBLE) IS NULL "
        "THEN NULL ELSE {'type': 'Point', "
        f"'coordinates': [TRY_CAST({quote(lon)} AS DOUBLE), TRY_CAST({quote(lat)} AS DOUBLE)]}} END, "
        f"'properties': {{{props}}}}}"
    )
    lines = target.with_suffix(".ndjson.tmp")
    con.execute(f"COPY (SELECT {feature} AS f FROM {table}) TO {literal(str(lines))} (FORMAT json)")
    try:
        with target.open("w", encoding="utf-8") as out, lines.open(encoding="utf-8") as src:
            out.write('{"type": "FeatureCollection", "features": [\n')
            first = True
            for line in src:
                # each line is {"f": {...}}: keep the inner object
                inner = line.rstrip("\n")[len('{"f":'):-1]
                out.write(("" if first else ",\n") + inner)
                first = False
            out.write("\n]}\n")
    finally:
        os.unlink(lines)
    return target
