"""Feed contracts: one YAML per source says where files land, how to read them and how fields map.

Adding a feed is adding a contract (in `lake/feeds/` or `$ONEMAP_HOME/feeds/`), never code. Example:

    feed: demo_parcels_2019
    table: parcels                 # a silver table of the registry
    format: gpkg                   # gpkg | shapefile | geojson | filegdb (default: from the file name)
    landing: survey/parcels/2019/DLTB_*.gpkg   # glob(s) under $ONEMAP_HOME/landing
    url: https://example.org/stac/search      # instead of landing: a source polled by URL (needs format:)
    options: {}                    # reader-specific settings (see the reader's docstring)
    prune_missing: true            # a re-delivery drops rows its source no longer has (false: incremental)
    region_check: within           # within | intersects | off (default: the table's rule, e.g. intersects for STAC)
    layer: DLTB                    # optional for a file with one layer; a file with several needs it
    crs: EPSG:4545                 # used when the file carries no CRS (GeoJSON, .prj-less); GCJ-02 allowed
    crs_override: false            # true: the contract's CRS wins over the file's
    encoding: GBK                  # text encoding of a .dbf without .cpg (default UTF-8); decoded strictly
    on_partial_shapefile: fail     # fail | quarantine: a shapefile whose .shp/.shx/.dbf disagree on its records
    repair_invalid: false          # true: repair invalid polygons (GEOS make_valid) and log it, not quarantine
    district: {from_path: 'DLTB_(\\d{6})_'}   # Dagster partition of a file: {code: '500103'} or from_path
    fields:                        # canonical column: source field, or a rule
      parcel_id: BSM
      district_code: {field: ZLDWDM, slice: [0, 6]}
      survey_year: {value: 2019}
      line_type: {field: HXLX, map: {生态保护红线: ecological_red_line}}
      district_code: {spatial: districts}   # assign by location in silver.districts
"""

from __future__ import annotations

import fnmatch
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from lake.errors import OnemapError
from lake.registry import SILVER
from lake.settings import current_settings

REPO_FEEDS_DIR = Path(__file__).resolve().parent / "feeds"
REGION_PARTITION = "500000"
_SUFFIX_FORMATS = {".gpkg": "gpkg", ".shp": "shapefile", ".geojson": "geojson", ".json": "geojson", ".gdb": "filegdb"}


class FieldRule(BaseModel):
    """How one canonical column is filled from a delivered row."""

    model_config = ConfigDict(extra="forbid")
    field: str | None = None
    value: Any = None
    slice: tuple[int, int] | None = None
    map: dict[str, Any] | None = None
    default: Any = None
    spatial: Literal["districts"] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> FieldRule:
        sources = [self.field is not None, self.value is not None, self.spatial is not None]
        if sum(sources) != 1:
            raise ValueError("give exactly one of `field`, `value` or `spatial`")
        return self


class DistrictRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str | None = None
    from_path: str | None = None


class FeedContract(BaseModel):
    """A validated feed contract (see the module docstring for the YAML)."""

    model_config = ConfigDict(extra="forbid")
    feed: str
    table: str
    description: str = ""
    format: str | None = None
    landing: list[str] = []
    url: str | None = None
    options: dict[str, Any] = {}
    prune_missing: bool = True
    region_check: Literal["within", "intersects", "off"] | None = None  # default: the table's region_rule
    layer: str | None = None
    crs: str | None = None
    crs_override: bool = False
    encoding: str | None = None
    on_partial_shapefile: Literal["fail", "quarantine"] = "fail"  # quarantine: land complete records, not the rest
    repair_invalid: bool = False
    district: DistrictRule | None = None
    fields: dict[str, FieldRule]
    path: Path | None = None  # the YAML it was loaded from

    @field_validator("landing", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("fields", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {k: {"field": r} if isinstance(r, str) else r for k, r in (v or {}).items()}

    @model_validator(mode="after")
    def _fits_table(self) -> FeedContract:
        from lake.readers import READERS

        if self.format is not None and self.format not in READERS:
            raise ValueError(f"format {self.format!r} is not known; formats: {', '.join(sorted(READERS))}")
        if self.url is not None and self.format is None:
            raise ValueError("a feed with `url:` needs `format:`")
        if self.table not in SILVER or SILVER[self.table].parent is not None:
            feedable = sorted(n for n, t in SILVER.items() if t.parent is None)
            raise ValueError(f"table {self.table!r} is not a silver table a feed can target; use one of {feedable}")
        spec = SILVER[self.table]
        canonical = {f.name for f in spec.columns}
        unknown = set(self.fields) - canonical
        if unknown:
            raise ValueError(f"fields {sorted(unknown)} are not columns of {self.table}; columns: {sorted(canonical)}")
        missing = [c for c in spec.primary_key if c not in self.fields]
        if missing:
            raise ValueError(f"primary-key columns {missing} of {self.table} have no field rule")
        return self

    @cached_property
    def _path_regex(self) -> re.Pattern[str] | None:
        return re.compile(self.district.from_path) if self.district and self.district.from_path else None

    def format_of(self, source: str | Path) -> str:
        if self.format:
            return self.format
        fmt = _SUFFIX_FORMATS.get(Path(str(source)).suffix.lower())
        if fmt is None:
            raise OnemapError(f"{source}: cannot tell the format from the name; set `format:` in feed {self.feed}")
        return fmt

    def matches(self, relative_path: str) -> bool:
        return any(fnmatch.fnmatch(relative_path, pattern) for pattern in self.landing)

    def partition_of(self, path: Path) -> str:
        """The district partition a delivered file belongs to (the region code when it covers the region)."""
        if self.district and self.district.code:
            return self.district.code
        if self._path_regex and (m := self._path_regex.search(path.name)):
            return m.group(1)
        return REGION_PARTITION


def load_contract(path: Path) -> FeedContract:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise OnemapError(f"feed contract {path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise OnemapError(f"feed contract {path}: expected a mapping at the top level")
    try:
        return FeedContract(**raw, path=path)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'contract'}: {e['msg']}" for e in exc.errors())
        raise OnemapError(f"feed contract {path}: {problems}") from exc


def contract_dirs() -> list[Path]:
    return [REPO_FEEDS_DIR, current_settings().feeds_dir]


def load_contracts() -> dict[str, FeedContract]:
    """Every contract shipped in the repo and added under $ONEMAP_HOME/feeds, by feed name (names are unique)."""
    contracts: dict[str, FeedContract] = {}
    for folder in contract_dirs():
        for path in sorted(folder.rglob("*.yaml")) if folder.exists() else []:
            contract = load_contract(path)
            if contract.feed in contracts:
                raise OnemapError(f"feed {contract.feed!r} is defined twice: {contracts[contract.feed].path} and {path}")
            contracts[contract.feed] = contract
    return contracts


def get_contract(name: str) -> FeedContract:
    contracts = load_contracts()
    if name not in contracts:
        raise OnemapError(f"no feed contract named {name!r}; known feeds: {', '.join(sorted(contracts)) or 'none'}")
    return contracts[name]
