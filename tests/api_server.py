"""A real uvicorn server over a small lake (parcel grid in two districts, STAC items) with three departments."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import shapely
from lake import delta_io
from lake.access import grants
from lake.grid_parcels import write_parcel_grid
from lake.registry import STAC_ASSETS, STAC_ITEMS
from twin_viewer.server.app import ApiConfig, create_app
from twin_viewer.server.run import serve_in_thread

DISTRICTS = ["500103", "500112"]
GRID_SIDE = 40  # 1,600 parcels of 0.004°, columns 0-19 in 500103, 20-39 in 500112
STAC_COLLECTIONS = {"sentinel-2-l2a": 18, "dem-srtm": 4}


@dataclass
class ApiServer:
    url: str
    app: object
    tokens: dict[str, str]  # department → token
    revoked: str

    def headers(self, department: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[department]}"}

    def flush_audit(self) -> None:
        self.app.state.audit.flush()


def write_stac_items() -> int:
    items, assets = [], []
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for collection, count in STAC_COLLECTIONS.items():
        for i in range(count):
            x, y = 106.0 + i * 0.05, 29.0 + (i % 3) * 0.05
            geom = shapely.box(x, y, x + 0.1, y + 0.1)
            when = start + timedelta(days=10 * i)
            item_id = f"{collection}-{i:03d}"
            props = {"datetime": when.isoformat().replace("+00:00", "Z"), "eo:cloud_cover": float(i * 5 % 100),
                     "platform": "sentinel-2a" if collection.startswith("sentinel") else "srtm"}
            items.append({"collection": collection, "item_id": item_id, "datetime": when,
                          "cloud_cover": props["eo:cloud_cover"], "stac_version": "1.0.0",
                          "stac_extensions": json.dumps([]), "properties": json.dumps(props), "links": "[]",
                          "geometry": shapely.to_wkb(geom), "bbox_xmin": x, "bbox_ymin": y, "bbox_xmax": x + 0.1,
                          "bbox_ymax": y + 0.1})
            assets.append({"collection": collection, "item_id": item_id, "asset_key": "visual",
                           "href": f"https://example.invalid/{item_id}.tif",
                           "media_type": "image/tiff; application=geotiff; profile=cloud-optimized",
                           "roles": json.dumps(["data"]), "title": "visual"})
    delta_io.append(STAC_ITEMS, _complete(STAC_ITEMS.schema, items))
    delta_io.append(STAC_ASSETS, _complete(STAC_ASSETS.schema, assets))
    return len(items)


def _complete(schema: pa.Schema, rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist([{name: row.get(name) for name in schema.names} for row in rows], schema=schema)


def set_up_departments() -> tuple[dict[str, str], str]:
    grants.create_department("housing", "Housing and urban-rural development")
    grants.grant("housing", "silver/parcels")
    grants.grant("housing", "silver/stac_items")
    grants.grant("housing", "silver/stac_assets")
    grants.create_department("agriculture")
    grants.grant("agriculture", "parcels", columns=["parcel_id", "survey_year", "land_class_code", "geometry"],
                 districts=["500112"])
    grants.create_department("transport")  # no grants at all
    tokens = {d: grants.issue_token(d)[1] for d in ("housing", "agriculture", "transport")}
    _, revoked = grants.issue_token("housing")
    grants.revoke_token(revoked)
    return tokens, revoked


@contextmanager
def department_lake(home: Path) -> Iterator[tuple[dict[str, str], str]]:
    """The small lake and three departments under `home`, with ONEMAP_HOME set to it for the duration; yields the
    departments' tokens and a revoked token."""
    previous = os.environ.get("ONEMAP_HOME")
    os.environ["ONEMAP_HOME"] = str(home)
    try:
        write_parcel_grid(GRID_SIDE, DISTRICTS)
        write_stac_items()
        yield set_up_departments()
    finally:
        if previous is None:
            os.environ.pop("ONEMAP_HOME", None)
        else:
            os.environ["ONEMAP_HOME"] = previous


@contextmanager
def api_server(home: Path, config: ApiConfig) -> Iterator[ApiServer]:
    """The department lake under `home`, then the server in a thread."""
    with department_lake(home) as (tokens, revoked):
        app = create_app(config)
        with serve_in_thread(app) as url:
            yield ApiServer(url, app, tokens, revoked)
