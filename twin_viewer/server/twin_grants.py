"""What a department may see of the twin: every layer and endpoint shows one lake table, and only through a grant.

    layer          table (columns the layer needs to be drawn)
    parcels        gold/one_map_parcels for the published survey year, silver/parcels for the others
                   (geometry, land_class_code: the fill colour)
    conflicts      gold/control_line_conflicts (geometry, severity)
    control_lines  silver/control_lines (geometry, line_type)
    hazards        silver/hazard_points (geometry)
    buildings      silver/buildings; the 3D Tiles are built once for the region with building_id, name, function,
                   district_code, height_m and storeys baked in, so they need those columns of every district
    imagery        silver/stac_items (the scenes); terrain too (it is cut from the catalog's DEM)
    districts      silver/districts (geometry)
    indicators     gold/district_indicators

Attribute answers carry only granted columns (`centre`/`bbox` count as geometry) and, under a district-restricted
grant, only rows of its districts; map tiles of such a grant are drawn from its districts' rows alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from lake.access import grants
from lake.access.grants import Department, TableGrant
from lake.registry import (BUILDINGS, CONTROL_LINES, DISTRICTS, GOLD_CONFLICTS, GOLD_DISTRICT_INDICATORS,
                           GOLD_ONE_MAP_PARCELS, HAZARD_POINTS, PARCELS, STAC_ITEMS, TableSpec)
from twin_viewer.server.errors import ApiError


@dataclass(frozen=True)
class Need:
    """The table a layer shows and what of it the layer needs."""

    spec: TableSpec
    columns: tuple[str, ...] = ()
    every_district: bool = False


PARCEL_COLUMNS = ("geometry", "land_class_code")
LAYERS: dict[str, Need] = {
    "imagery": Need(STAC_ITEMS),
    "terrain": Need(STAC_ITEMS),
    "parcels": Need(GOLD_ONE_MAP_PARCELS, PARCEL_COLUMNS),
    "control_lines": Need(CONTROL_LINES, ("geometry", "line_type")),
    "conflicts": Need(GOLD_CONFLICTS, ("geometry", "severity")),
    "buildings": Need(BUILDINGS, ("geometry", "building_id", "name", "function", "district_code", "height_m",
                                  "storeys"), every_district=True),
    "hazards": Need(HAZARD_POINTS, ("geometry",)),
    "districts": Need(DISTRICTS, ("geometry",)),
    "indicators": Need(GOLD_DISTRICT_INDICATORS),
}
VECTOR_LAYERS = {"hazard_points": "hazards", "control_lines": "control_lines", "districts": "districts"}
# every table the twin can show: what `onemap demo` grants the governance center
TWIN_TABLES: tuple[str, ...] = tuple(dict.fromkeys([*(n.spec.key for n in LAYERS.values()), PARCELS.key]))
FROM_GEOMETRY = ("centre",)  # derived fields shown only with the geometry
GOVERNANCE_CENTER = "governance-center"


def governance_center_token(expires_in: timedelta | None = None) -> str:
    """A new token of the twin's own department, created if absent and granted every table the twin shows (every
    column, every district): the demo's sign-in link, the viewer benchmark and the screenshot sign in with it."""
    grants.ensure_department(GOVERNANCE_CENTER, "Natural-resources governance center: the twin's own department",
                             TWIN_TABLES)
    return grants.issue_token(GOVERNANCE_CENTER, expires_in)[1]


def visible(grant: TableGrant, row: dict[str, Any]) -> bool:
    """Whether a row lies in the grant's districts (always, for a grant of every district)."""
    return grant.districts is None or row.get("district_code") in grant.districts


def restrict(grant: TableGrant, row: dict[str, Any]) -> dict[str, Any]:
    """The row with only the granted columns."""
    allowed = set(grant.columns) | (set(FROM_GEOMETRY) if grant.has_geometry else set())
    return {k: v for k, v in row.items() if k in allowed}


def granted_rows(grant: TableGrant, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [restrict(grant, r) for r in rows if visible(grant, r)]


class TwinAccess:
    """One department's view of the twin (built per request from its current grants)."""

    def __init__(self, department: Department) -> None:
        self.department = department

    def table(self, spec: TableSpec, columns: Iterable[str] = (), every_district: bool = False) -> TableGrant | None:
        """The grant on `spec` if it includes `columns` (and every district when asked), else None."""
        grant = self.department.grants.get(spec.key)
        if grant is None or not set(columns) <= set(grant.columns):
            return None
        return grant if grant.districts is None or not every_district else None

    def layer(self, layer: str, spec: TableSpec | None = None) -> TableGrant | None:
        """The grant that lets the layer be shown (`spec` overrides its table: silver parcels of other years)."""
        need = LAYERS[layer]
        return self.table(spec or need.spec, need.columns, need.every_district)

    def require(self, grant: TableGrant | None, what: str, spec: TableSpec) -> TableGrant:
        """The grant, or the 403 naming what needs which table (the same whether or not data exists)."""
        if grant is None:
            raise ApiError(403, f"{what} needs a grant on {spec.key} that your department "
                                f"({self.department.name}) does not have")
        return grant

    def require_layer(self, layer: str, spec: TableSpec | None = None) -> TableGrant:
        need = LAYERS[layer]
        table = spec or need.spec
        columns = f" with {', '.join(need.columns)}" if need.columns else ""
        scope = " for every district" if need.every_district else ""
        return self.require(self.layer(layer, spec), f"the {layer} layer{columns}{scope}", table)

    def any_layer(self) -> bool:
        return any(self.layer(name) for name in LAYERS) or self.layer("parcels", PARCELS) is not None
