"""`onemap demo` end to end: the demo region generated, ingested by the real readers through Dagster, status shown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lake import delta_io
from lake.demo import write_demo
from lake.registry import PUBLISH_LOG, QUARANTINE, SILVER


def test_demo_materializes_every_survey_table(home: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "orchestration.cli", "demo", "--parcels", "2000", "--no-serve"],
                         env={**os.environ, "ONEMAP_HOME": str(home), "COLUMNS": "200"}, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "materialized " in run.stdout
    published = [r for r in delta_io.read_table(PUBLISH_LOG).to_pylist() if r["status"] == "published"]
    assert published, "the demo build publishes the one map to gold/"
    manifest, extras = write_demo(home / "scratch", parcels=2000)  # same seed: the same region, to compare
    rows = {name: delta_io.read_table(spec).num_rows for name, spec in SILVER.items()}
    assert rows["districts"] == 38
    assert rows["parcels"] == 2 * manifest.parcels_per_year
    assert rows["control_lines"] == manifest.counts["control_lines"]
    models = sum(v for k, v in extras.items() if k.startswith("models_"))
    assert rows["buildings"] == manifest.counts["buildings"] + models  # survey footprints + IFC/CityJSON/CityGML
    assert rows["building_meshes"] == models
    assert rows["stac_items"] == extras["imagery_items"] and rows["stac_assets"] == extras["imagery_assets"]
    hazards_ok = manifest.counts["hazards"] - len(manifest.planted_defects) - 1  # the duplicate's first copy too
    assert rows["hazard_points"] == hazards_ok
    quarantined = {dict(r["attributes"])["ZHDBH"]: r["rule_id"]
                   for r in delta_io.read_table(QUARANTINE["hazard_points"]).to_pylist()}
    assert quarantined == manifest.planted_defects
    status = subprocess.run([sys.executable, "-m", "orchestration.cli", "status", "--json"], capture_output=True,
                            text=True, env={**os.environ, "ONEMAP_HOME": str(home)}, check=True)
    layers = {t["layer"] for t in json.loads(status.stdout) if t["rows"] > 0}
    assert {"bronze", "silver", "quarantine", "meta"} <= layers
