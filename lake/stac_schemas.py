"""Offline JSON-Schema validation of STAC items, collections and catalogs (nothing is fetched at run time).

Schemas come from `$ONEMAP_SCHEMAS/stac` (default `<repo>/../shared/schemas/stac`: core 1.0.0-beta.2 … 1.1.0,
33 extensions, GeoJSON, PROJJSON) and, when that is absent, from the minimal copy shipped in `lake/schemas/stac`
(core 1.0.0 and 1.1.0 only). Every `$ref` resolves through a `referencing.Registry` preloaded from the local
files; a URL not in the local index is never fetched.

Policy: an object is checked against its version's core schema and against every extension schema available
locally. Extensions without a local schema are reported in `unchecked_extensions`, not failed: the core fields the
lake relies on are still checked, and a producer's private extension is not an error. An object whose
`stac_version` has no local core schema (0.x) gets `core_available=False`; the reader then migrates it with
pystac and validates the migrated object.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.validators import validator_for
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT7

from lake.settings import REPO_ROOT

SHIPPED_DIR = Path(__file__).resolve().parent / "schemas" / "stac"
MOST_ERRORS = 3  # schema errors quoted per object; the first is the most relevant (jsonschema's best_match)


@dataclass(frozen=True)
class StacValidation:
    kind: str  # item | collection | catalog
    version: str | None
    errors: tuple[str, ...]  # one line each: "<schema>: <json path>: <message>"
    unchecked_extensions: tuple[str, ...]  # declared, but no local schema
    core_available: bool = True

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def reason(self) -> str:
        return "; ".join(self.errors)


def schemas_dir() -> Path:
    """The STAC schema folder in use: $ONEMAP_SCHEMAS/stac (default ../shared/schemas/stac), else the shipped copy."""
    shared = Path(os.environ.get("ONEMAP_SCHEMAS", REPO_ROOT.parent / "shared" / "schemas")) / "stac"
    return shared if (shared / "INDEX.json").is_file() else SHIPPED_DIR


@cache
def _local_schemas(folder: Path) -> tuple[Registry, dict[str, dict[str, Any]]]:
    """Every schema of the folder's INDEX.json, by canonical URL, in one registry (also under its declared $id)."""
    index = json.loads((folder / "INDEX.json").read_text(encoding="utf-8"))["schemas"]
    contents = {url: json.loads((folder / path).read_text(encoding="utf-8")) for url, path in index.items()}
    resources = [(url, Resource.from_contents(doc, default_specification=DRAFT7)) for url, doc in contents.items()]
    return Registry().with_resources(resources).crawl(), contents


@cache
def _validator(folder: Path, url: str) -> Draft7Validator:
    registry, contents = _local_schemas(folder)
    schema = contents[url]
    return validator_for(schema, default=Draft7Validator)(schema, registry=registry)


def stac_kind(obj: dict[str, Any]) -> str:
    """item, collection or catalog, from `type` (1.0+) or, for legacy objects without it, from their fields."""
    declared = obj.get("type")
    if declared == "Feature" or (declared is None and ("geometry" in obj or "properties" in obj)):
        return "item"
    if declared == "Collection" or (declared is None and "extent" in obj):
        return "collection"
    return "catalog"


def core_schema_url(kind: str, version: str) -> str:
    return f"https://schemas.stacspec.org/v{version}/{kind}-spec/json-schema/{kind}.json"


def _extension_urls(extension: str, version: str) -> tuple[str, ...]:
    """Where an extension's schema may be, best first. Extensions are URLs since 1.0.0-rc.1; before, short names
    whose schemas lived beside the core ones, else the extension's first stable release (what pystac's migration
    maps the short name to)."""
    if "://" in extension:
        return (extension.split("#", 1)[0],)
    return (f"https://schemas.stacspec.org/v{version}/extensions/{extension}/json-schema/schema.json",
            f"https://stac-extensions.github.io/{extension}/v1.0.0/schema.json")


def _errors(folder: Path, url: str, obj: dict[str, Any]) -> list[str]:
    found = list(_validator(folder, url).iter_errors(obj))
    if not found:
        return []
    label = url.removeprefix("https://").removeprefix("schemas.stacspec.org/")
    best = best_match(found)
    ordered = [best, *(e for e in found if e is not best)][:MOST_ERRORS]
    return list(dict.fromkeys(f"{label}: {e.json_path}: {e.message[:300]}" for e in map(_specific, ordered)))


def _specific(error: ValidationError) -> ValidationError:
    """A oneOf/anyOf failure quotes the whole object; say what is wrong in the branch meant for this object
    (extension schemas branch on `type`: Feature vs Collection), the one with the fewest errors."""
    while error.context:
        branches: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        meant = [b for b in branches.values() if not any(list(e.path) == ["type"] for e in b)] or list(
            branches.values())
        error = best_match(min(meant, key=len))
    return error


_GEOMETRY = "https://geojson.org/schema/Geometry.json"
_STAND_IN = {"type": "Point", "coordinates": [0.0, 0.0]}


def _zeroed(value: Any) -> Any:
    """The value with every number set to 0: what the GeoJSON schemas see (they bound no coordinate values)."""
    if isinstance(value, dict):
        return {k: _zeroed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_zeroed(v) for v in value]
    return 0.0 if isinstance(value, int | float) and not isinstance(value, bool) else value


@cache
def _geometry_shape_valid(folder: Path, zeroed_json: str) -> bool:
    return _validator(folder, _GEOMETRY).is_valid(json.loads(zeroed_json))


def _without_valid_geometry(folder: Path, obj: dict[str, Any]) -> dict[str, Any]:
    """Speed: coordinate arrays are most of an item's validation time, and the core schemas constrain a non-null
    geometry only through the GeoJSON schemas, which check structure and types, never values. So a geometry whose
    zeroed form passed Geometry.json once is swapped for a small valid stand-in; any other is validated as is."""
    geometry = obj.get("geometry")
    if isinstance(geometry, dict) and _GEOMETRY in _local_schemas(folder)[1] and _geometry_shape_valid(
            folder, json.dumps(_zeroed(geometry), sort_keys=True)):
        return {**obj, "geometry": _STAND_IN}
    return obj


def validate_stac(obj: Any, check_schemas: bool = True) -> StacValidation:
    """Validate one STAC object (already parsed JSON). Without `stac_version` the latest core schema judges it.

    `check_schemas=False` skips the (costly) schema checks but still says which schemas apply: for an object
    whose identical content passed before.
    """
    if not isinstance(obj, dict):
        return StacValidation("item", None, (f"not a JSON object but {type(obj).__name__}",), ())
    folder = schemas_dir()
    _, contents = _local_schemas(folder)
    kind = stac_kind(obj)
    version = obj.get("stac_version")
    core = core_schema_url(kind, version if isinstance(version, str) else "1.1.0")
    if core not in contents:
        return StacValidation(kind, version, (), (), core_available=False)
    errors = _errors(folder, core, _without_valid_geometry(folder, obj)) if check_schemas else []
    unchecked: list[str] = []
    extensions = obj.get("stac_extensions") or []
    for extension in extensions if isinstance(extensions, list) else []:
        url = next((u for u in _extension_urls(str(extension), str(version)) if u in contents), None)
        if url is None:
            unchecked.append(str(extension))
        elif check_schemas:  # a short name checked against a stable schema is declared the way that schema expects
            legacy = "://" not in str(extension) and "stac-extensions.github.io" in url
            try:
                errors += _errors(folder, url, {**obj, "stac_extensions": [url]} if legacy else obj)
            except Unresolvable as exc:  # the extension $refs a schema that is not stored locally
                unchecked.append(f"{extension} (unresolvable $ref {exc})")
    return StacValidation(kind, version if isinstance(version, str) else None, tuple(errors), tuple(unchecked))
