"""A synthetic but realistic demo region, written in the formats real land-survey feeds deliver.

Everything is derived from one seed, so a demo, a test or a benchmark can be rebuilt exactly. The region is the
38 districts of `lake.domain` and the files land where feed contracts expect them (see `generate_demo_region`).

Design, in the order the generator runs (all geometry in CGCS2000 lon/lat, treated as equal to WGS84):

1. Districts are the Voronoi cells of the 38 seats (GCJ-02 in the domain table, converted to WGS84) clipped to a
   fixed outline of Chongqing (hand-drawn, Chaikin-smoothed, roughened by fixed sines). They tessellate it exactly,
   and their edges, like the parcels', are densified to 0.005° so that an edge is the same line in lon/lat, GCJ-02
   and Gauss–Krüger, and TBMJ agrees with the ellipsoidal area within 0.1%.
2. Parcels (三调 DLTB 图斑) are Voronoi cells of random points inside each district, clipped to it, so a district's
   parcels tessellate it. Points are denser near the seat, as real urban parcels are smaller. Districts get parcels
   half in proportion to sqrt(area) and half equally, so the small central districts still get hundreds.
3. Land classes come from smooth fields rather than per-parcel dice, so they are spatially coherent: an "urban"
   score decays with distance to the district seat and town centres, a "terrain" score rises towards the eastern
   and northern mountains, away from seats and away from the big rivers. Each class takes, in a fixed order, the
   parcels ranking highest on its score until it holds its share of the region's area (water on rivers, urban
   construction near seats, cultivated land in low valleys, forest for the rest, and so on).
4. The 2023 survey changes about 2.5% of parcels: cultivated to construction near towns (耕地非农化), low forest
   to cultivated, sloping cultivated to orchard.
5. Control lines are built from the parcels, so their overlaps with survey classes are realistic: the ecological
   red line closes over high forest, permanent basic farmland dissolves most cultivated parcels per town, and the
   urban development boundary closes over the construction core around each seat.
6. Hazard points fall mostly in mountain parcels; buildings are non-overlapping rotated rectangles inside urban
   construction parcels of the 区 (not 县), taller near the seat.

Writers set GDAL options that drop timestamps and random UUIDs, so re-running with the same seed rewrites every
file byte for byte.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyogrio
import pyproj
import shapely

from lake.area import ellipsoidal_area_m2
from lake.crs import CGCS2000_A, CGCS2000_RF, gcj02_to_wgs84, wgs84_to_gcj02
from lake.domain import districts, land_classes

Progress = Callable[[str, int, int], None]

SURVEY_YEARS = (2019, 2023)
OUTPUT_DIRS = ("districts", "parcels", "control_lines", "hazards", "buildings")  # under <landing>/survey/
GK_EPSG_BY_MERIDIAN = {105: 4544, 108: 4545, 111: 4546}  # CGCS2000 3-degree Gauss–Krüger, by central meridian
CONTROL_LINE_FILES = {"STHX": "生态保护红线", "YJJBNT": "永久基本农田", "CZKFBJ": "城镇开发边界"}
# Districts of the central city: larger urban cores.
MAIN_CITY = {"500103", "500104", "500105", "500106", "500107", "500108", "500109", "500112", "500113"}

_FIXED_DATE = "2024-01-01T00:00:00Z"
_KM_PER_DEG_LAT = 110.57
_KM_PER_DEG_LON = 111.32 * np.cos(np.radians(30.0))
_M_PER_DEG_LAT = 110_574.0
_MAX_EDGE_DEG = 0.005  # about 500 m: longer edges make Gauss–Krüger and ellipsoidal areas disagree

# Chongqing's outline in WGS84 lon/lat, clockwise from the west, smoothed by Chaikin's algorithm.
_OUTLINE = (
    (105.30, 29.45), (105.45, 29.15), (105.70, 29.05), (106.00, 28.95), (106.20, 28.85), (106.35, 28.55),
    (106.55, 28.25), (106.85, 28.45), (107.05, 28.80), (107.40, 28.85), (107.70, 28.90), (108.00, 28.95),
    (108.30, 28.65), (108.60, 28.22), (108.95, 28.17), (109.25, 28.45), (109.15, 28.95), (109.00, 29.40),
    (108.95, 29.75), (108.65, 30.10), (108.95, 30.45), (109.45, 30.50), (109.90, 30.80), (110.17, 31.05),
    (110.15, 31.40), (109.90, 31.65), (109.55, 31.90), (109.20, 32.05), (108.80, 32.18), (108.40, 32.05),
    (108.25, 31.70), (107.95, 31.40), (107.60, 31.00), (107.35, 30.75), (107.15, 30.40), (106.90, 30.15),
    (106.60, 30.30), (106.20, 30.45), (105.90, 30.45), (105.60, 30.20), (105.45, 29.85),
)
# The big rivers (WGS84), upstream to downstream: Yangtze, Jialing, Fu, Wu.
_RIVERS = (
    ((105.90, 28.98), (106.10, 29.05), (106.26, 29.29), (106.45, 29.40), (106.59, 29.56), (106.80, 29.62),
     (107.08, 29.78), (107.39, 29.72), (107.72, 29.87), (108.02, 30.28), (108.40, 30.78), (108.70, 30.93),
     (109.10, 30.98), (109.47, 31.03), (109.88, 31.08), (110.16, 31.05)),
    ((106.30, 30.40), (106.27, 29.99), (106.43, 29.83), (106.45, 29.60), (106.59, 29.56)),
    ((105.75, 30.40), (105.84, 30.19), (106.05, 30.08), (106.27, 29.99)),
    ((108.45, 28.75), (108.17, 29.29), (107.76, 29.32), (107.39, 29.72)),
)

# Land-class allocation, in order: (label, score name, iid noise weight, share of region area, codes, weights).
# Each entry takes the free parcels ranking highest on its score; forest takes what is left.
_ALLOCATION: tuple[tuple[str, str, float, float, tuple[str, ...], tuple[float, ...]], ...] = (
    ("river", "river", 0.3, 0.016, ("1101",), (1.0,)),
    ("floodplain", "river", 0.0, 0.0015, ("1106",), (1.0,)),
    ("reservoir", "reservoir", 0.0, 0.007, ("1103",), (1.0,)),
    ("urban", "urban", 0.03, 0.06,
     ("0701", "05H1", "0508", "0601", "08H1", "08H2", "0809", "0810", "1004", "1005", "1002", "09", "1008"),
     (0.38, 0.12, 0.03, 0.12, 0.03, 0.07, 0.02, 0.04, 0.14, 0.02, 0.01, 0.01, 0.01)),
    ("rural", "low", 1.2, 0.04, ("0702", "1003", "0601", "0602", "1004", "1001", "09", "0809", "05H1"),
     (0.62, 0.14, 0.08, 0.05, 0.04, 0.02, 0.01, 0.02, 0.02)),
    ("pond", "low", 1.0, 0.012, ("1104", "1107"), (0.75, 0.25)),
    ("cultivated", "low", 0.25, 0.20, ("0101",), (1.0,)),  # split into 0101/0102/0103 by terrain afterwards
    ("plantation", "low", 0.6, 0.07, ("0201", "0202", "0204"), (0.55, 0.25, 0.20)),
    ("lowland other", "low", 1.5, 0.01, ("1202", "1201"), (0.6, 0.4)),
    ("upland other", "high", 1.0, 0.03, ("1207", "1206"), (0.65, 0.35)),
    ("grassland", "meadow", 0.3, 0.045, ("0404", "0401", "0403"), (0.7, 0.2, 0.1)),
)
_CULTIVATED_TO_CONSTRUCTION = (("0701", "0601", "05H1", "1004", "1003"), (0.45, 0.25, 0.10, 0.10, 0.10))

_HAZARD_TYPES = ("滑坡", "崩塌", "泥石流", "地面塌陷", "不稳定斜坡")
_HAZARD_SCALES = ("小型", "中型", "大型", "特大型")
_BUILDING_USES = ("住宅", "商业", "办公", "工业", "公共服务")
# Usage mix of buildings by the parcel's land class, over _BUILDING_USES.
_USE_BY_CLASS = {
    "0701": (0.85, 0.10, 0.0, 0.0, 0.05), "0702": (0.95, 0.05, 0.0, 0.0, 0.0), "05H1": (0.0, 0.6, 0.4, 0.0, 0.0),
    "0601": (0.0, 0.0, 0.1, 0.9, 0.0), "08H1": (0.0, 0.0, 0.8, 0.0, 0.2), "08H2": (0.0, 0.0, 0.0, 0.0, 1.0),
}
BUILDING_PARCEL_CODES = tuple(_USE_BY_CLASS)
_ESTATE_STEMS = ("锦绣", "龙湖", "滨江", "山城", "御景", "天地", "金沙", "融汇", "江山", "翠湖")
_NAME_SUFFIX = {"住宅": "花园", "商业": "广场", "办公": "大厦", "工业": "厂房", "公共服务": "中心"}


@dataclass(frozen=True)
class DemoManifest:
    """What `generate_demo_region` wrote: the main file of each dataset (not shapefile sidecars) and row counts."""

    landing: Path
    seed: int
    survey_years: tuple[int, int]
    parcels_per_year: int
    files: dict[str, list[Path]]
    counts: dict[str, int]
    # Rows written wrong on purpose, as real deliveries have them: hazard id -> the ingest rule that must catch it.
    planted_defects: dict[str, str]
    # Planted truth for the one map (plant_conflicts > 0): conflict rule -> [{"id": parcel or building id,
    # "area_m2": ellipsoidal area of the conflict}], and the planted overlap (plant_overlap) if any.
    planted_conflicts: dict[str, list[dict]] = field(default_factory=dict)
    planted_overlap: dict | None = None


@dataclass(frozen=True)
class _Districts:
    codes: np.ndarray  # str, 6 digits
    names: np.ndarray
    is_urban: np.ndarray  # kind == "district" (区)
    seats: np.ndarray  # (n, 2) WGS84 lon/lat
    geoms: np.ndarray  # Polygon, WGS84
    areas: np.ndarray  # m², ellipsoidal
    core_km: np.ndarray  # decay length of the urban score around the seat
    epsg: np.ndarray  # Gauss–Krüger zone of the seat


@dataclass(frozen=True)
class _Parcels:
    geoms: np.ndarray
    district: np.ndarray  # index into _Districts
    seq: np.ndarray  # 1-based number within the district
    area: np.ndarray  # m², ellipsoidal
    town: np.ndarray  # 0-based town index within the district (0 = the seat's)
    village: np.ndarray  # 0-based village index within the town
    d_town_km: np.ndarray  # distance to the nearest town centre other than the seat
    u_seat: np.ndarray  # urban score from the seat alone, in (0, 1]
    fields: dict[str, np.ndarray]  # smooth scores driving the land-class allocation


def generate_demo_region(
    landing: Path, parcels: int = 20_000, seed: int = 0, progress: Progress | None = None,
    plant_conflicts: int = 0, plant_overlap: bool = False,
) -> DemoManifest:
    """Write the demo region's survey feeds under `landing/survey/`, replacing any earlier demo output there.

    `plant_conflicts` plants that many conflicts of each control-line rule in the latest survey (and buildings in
    farmland) with known ids and areas; `plant_overlap` grows one 2023 parcel over its neighbours (a topology
    error that must block publishing). Both are recorded in the manifest for tests.

    Layout: districts/cq_districts.geojson (GCJ-02), parcels/{year}/DLTB_{code}_{year}.gpkg (Gauss–Krüger),
    control_lines/{STHX,YJJBNT,CZKFBJ}.shp (EPSG:4490, GBK), hazards/dzzh_points.geojson (WGS84),
    buildings/buildings.gdb (EPSG:4490).
    """
    report = progress or (lambda step, done, total: None)
    root = Path(landing) / "survey"
    for name in OUTPUT_DIRS:
        shutil.rmtree(root / name, ignore_errors=True)

    report("districts", 0, 1)
    dist = _build_districts()
    report("districts", 1, 1)
    par = _build_parcels(dist, parcels, seed, report)
    report("land classes", 0, 1)
    dlbm = _classify(par, seed)
    report("land classes", 1, 1)
    lines = _control_lines(dist, par, dlbm[SURVEY_YEARS[0]], seed, report)
    report("hazards", 0, 1)
    hazards, defects = _with_delivery_defects(_hazards(dist, par, dlbm[SURVEY_YEARS[0]], max(200, parcels // 100),
                                                       seed))
    report("hazards", 1, 1)
    report("buildings", 0, 1)
    buildings = _buildings(dist, par, dlbm[SURVEY_YEARS[0]], parcels // 4, seed)
    report("buildings", 1, 1)
    planted: dict[str, list[dict]] = {}
    if plant_conflicts:
        buildings, planted = _plant_conflicts(dist, par, dlbm, lines, buildings, plant_conflicts, seed)
    geoms_by_year = {year: par.geoms for year in SURVEY_YEARS}
    overlap = None
    if plant_overlap:
        geoms_by_year[SURVEY_YEARS[1]], overlap = _plant_overlap(dist, par)

    files, counts = _write_all(root, dist, par, dlbm, _ridge_factors(par, seed), lines, hazards, buildings,
                               report, geoms_by_year)
    return DemoManifest(Path(landing), seed, SURVEY_YEARS, len(par.geoms), files, counts, defects, planted, overlap)


# --- geometry helpers ------------------------------------------------------------------------------------------


def _rng(seed: int, *keys: int) -> np.random.Generator:
    """An independent stream per step (and district), so changing one step never reshuffles another."""
    return np.random.default_rng([seed, *keys])


def _km(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A local planar km frame, accurate enough for distances that only shape scores."""
    return (np.asarray(lon) - 107.5) * _KM_PER_DEG_LON, (np.asarray(lat) - 30.0) * _KM_PER_DEG_LAT


def _chaikin(points: np.ndarray, rounds: int = 4) -> np.ndarray:
    """Corner-cutting smoothing of a closed ring, so the outline has no hand-drawn kinks."""
    for _ in range(rounds):
        nxt = np.roll(points, -1, axis=0)
        points = np.stack([0.75 * points + 0.25 * nxt, 0.25 * points + 0.75 * nxt], axis=1).reshape(-1, 2)
    return points


def _wiggle(ring: np.ndarray) -> np.ndarray:
    """Displace a smooth ring along its normals by a fixed sum of sines, so the border looks surveyed, not drawn."""
    step = np.linalg.norm(np.diff(ring, axis=0, append=ring[:1]), axis=1)
    s = 2 * np.pi * np.r_[0.0, np.cumsum(step)[:-1]] / step.sum()
    offset = sum(a * np.sin(f * s + ph) for f, a, ph in ((9, 0.035, 0.3), (17, 0.025, 1.7), (31, 0.015, 4.1),
                                                         (53, 0.01, 2.9), (89, 0.006, 0.8)))
    tangent = np.roll(ring, -1, axis=0) - np.roll(ring, 1, axis=0)
    normal = np.column_stack([tangent[:, 1], -tangent[:, 0]]) / np.linalg.norm(tangent, axis=1)[:, None]
    return ring + offset[:, None] * normal


@lru_cache(maxsize=1)
def region_outline() -> shapely.Polygon:
    """The fixed outline of the demo region (WGS84), about 105.3–110.2E, 28.2–32.2N."""
    return shapely.Polygon(_wiggle(_chaikin(np.array(_OUTLINE))))


def _sample_in(poly: shapely.Geometry, n: int, rng: np.random.Generator,
               around: tuple[float, float, float] | None = None) -> np.ndarray:
    """n random points inside a polygon: uniform, or Gaussian around (lon, lat, sigma_deg); rejection sampling."""
    shapely.prepare(poly)
    xmin, ymin, xmax, ymax = poly.bounds
    out: list[np.ndarray] = []
    have = 0
    while have < n:
        m = max(64, 2 * (n - have))
        if around is None:
            xy = np.column_stack([rng.uniform(xmin, xmax, m), rng.uniform(ymin, ymax, m)])
        else:
            xy = rng.normal(around[:2], around[2], (m, 2))
        xy = xy[shapely.contains_xy(poly, xy[:, 0], xy[:, 1])]
        out.append(xy)
        have += len(xy)
    return np.concatenate(out)[:n]


def _points_in_each(geoms: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random point inside each polygon (rejection in its bbox, point_on_surface as a last resort)."""
    bounds = shapely.bounds(geoms)
    xy = np.full((len(geoms), 2), np.nan)
    todo = np.arange(len(geoms))
    for _ in range(30):
        if not len(todo):
            break
        b = bounds[todo]
        x, y = rng.uniform(b[:, 0], b[:, 2]), rng.uniform(b[:, 1], b[:, 3])
        ok = shapely.contains_xy(geoms[todo], x, y)
        xy[todo[ok]] = np.column_stack([x[ok], y[ok]])
        todo = todo[~ok]
    xy[todo] = shapely.get_coordinates(shapely.point_on_surface(geoms[todo]))
    return xy


def _smooth_noise(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, shortest_km: float, longest_km: float,
                  waves: int = 24) -> np.ndarray:
    """A smooth random field of unit variance: a sum of plane waves with random wavelength, direction and phase."""
    lam = np.exp(rng.uniform(np.log(shortest_km), np.log(longest_km), waves))
    theta = rng.uniform(0.0, np.pi, waves)
    phase = rng.uniform(0.0, 2 * np.pi, waves)
    amp = np.sqrt(lam)
    out = np.zeros_like(x, dtype=float)
    for k in range(waves):
        out += amp[k] * np.cos(2 * np.pi * (x * np.cos(theta[k]) + y * np.sin(theta[k])) / lam[k] + phase[k])
    return out / np.sqrt(0.5 * np.sum(amp**2))


@lru_cache(maxsize=8)
def _transformer(epsg: int) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(4490, epsg, always_xy=True)


def _project(geoms: np.ndarray, epsg: int) -> np.ndarray:
    """CGCS2000 lon/lat to a projected CRS, vectorised over all vertices."""
    transformer = _transformer(epsg)

    def fn(coords: np.ndarray) -> np.ndarray:
        return np.column_stack(transformer.transform(coords[:, 0], coords[:, 1]))

    return shapely.transform(geoms, fn)


def _to_gcj02(geoms: np.ndarray) -> np.ndarray:
    """Offset every vertex to GCJ-02, as Chinese web-map district files are published."""
    return shapely.transform(geoms, lambda c: np.column_stack(wgs84_to_gcj02(c[:, 0], c[:, 1])))


def _take(score: np.ndarray, area: np.ndarray, free: np.ndarray, target_m2: float) -> np.ndarray:
    """Indices of the free parcels ranking highest on score, until their area reaches target_m2."""
    idx = np.flatnonzero(free)
    order = idx[np.argsort(-score[idx], kind="stable")]
    return order[: int(np.searchsorted(np.cumsum(area[order]), target_m2))]


def _densify(polygons: np.ndarray, max_step: float) -> np.ndarray:
    """Insert vertices so no edge of these Polygons is longer than max_step degrees.

    A long edge is a different line in lon/lat, Gauss–Krüger and the equal-area frame, so areas computed in each
    would disagree. Unlike GEOS segmentize, new vertices are computed from the lexicographically smaller end of
    each edge, so an edge shared by two polygons gets bit-identical vertices from both sides and a tessellation
    stays an exact coverage.
    """
    kind, coords, (ring_offsets, polygon_offsets) = shapely.to_ragged_array(polygons)
    starts = np.ones(len(coords), dtype=bool)
    starts[ring_offsets[1:] - 1] = False  # a ring's closing vertex starts no edge
    seg = np.flatnonzero(starts)
    p, q = coords[seg], coords[seg + 1]
    pieces = np.ceil(np.hypot(*(q - p).T) / max_step).astype(np.int64)
    extra = np.zeros(len(coords), dtype=np.int64)
    extra[seg] = pieces - 1
    position = np.r_[0, np.cumsum(1 + extra)]
    out = np.empty((position[-1], 2))
    out[position[:-1]] = coords
    seg = seg[pieces > 1]
    p, q, pieces = coords[seg], coords[seg + 1], pieces[pieces > 1]
    flip = (p[:, 0] > q[:, 0]) | ((p[:, 0] == q[:, 0]) & (p[:, 1] > q[:, 1]))
    low, high = np.where(flip[:, None], q, p), np.where(flip[:, None], p, q)
    owner = np.repeat(np.arange(len(seg)), pieces - 1)
    j = np.arange(len(owner)) - np.repeat(np.cumsum(pieces - 1) - (pieces - 1), pieces - 1) + 1  # 1.. from p
    m = np.where(flip[owner], pieces[owner] - j, j)  # the same point counted from the lower end
    out[position[seg][owner] + j] = low[owner] + (m / pieces[owner])[:, None] * (high[owner] - low[owner])
    return shapely.from_ragged_array(kind, out, (position[ring_offsets], polygon_offsets))


def _polygon_parts(geoms: np.ndarray) -> np.ndarray:
    """The non-empty Polygon parts of (multi)geometries; clipping can also leave slivers, lines and points."""
    parts = shapely.get_parts(geoms)
    return parts[(shapely.get_type_id(parts) == shapely.GeometryType.POLYGON) & (shapely.area(parts) > 0)]


# --- districts and parcels -------------------------------------------------------------------------------------


def _gk_epsg(lon: float) -> int:
    """The CGCS2000 3-degree Gauss–Krüger zone whose central meridian is nearest."""
    return GK_EPSG_BY_MERIDIAN[min(GK_EPSG_BY_MERIDIAN, key=lambda cm: abs(cm - lon))]


def _build_districts() -> _Districts:
    """Voronoi cells of the seats clipped to the outline: they tessellate it, and each must be one Polygon."""
    ds = districts()
    lon, lat = gcj02_to_wgs84(np.array([d.seat_lon_gcj02 for d in ds]), np.array([d.seat_lat_gcj02 for d in ds]))
    outline = region_outline()
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(np.column_stack([lon, lat])),
                                                       extend_to=outline, ordered=True))
    geoms = _densify(shapely.intersection(cells, outline), _MAX_EDGE_DEG)
    bad = [d.code for d, g in zip(ds, geoms) if g.geom_type != "Polygon" or g.is_empty or not g.is_valid]
    if bad:
        raise RuntimeError(f"district cells are not single valid polygons: {bad}; adjust the region outline")
    codes = np.array([d.code for d in ds])
    is_urban = np.array([d.kind == "district" for d in ds])
    core_km = np.where(np.isin(codes, list(MAIN_CITY)), 6.0, np.where(is_urban, 3.5, 2.5))
    return _Districts(codes, np.array([d.name_zh for d in ds]), is_urban, np.column_stack([lon, lat]), geoms,
                      ellipsoidal_area_m2(geoms), core_km, np.array([_gk_epsg(x) for x in lon]))


def _parcel_quota(areas: np.ndarray, parcels: int) -> np.ndarray:
    """Parcels per district: half by sqrt(area), half equal (urban districts have many small parcels); >= 20."""
    share = 0.5 * np.sqrt(areas) / np.sqrt(areas).sum() + 0.5 / len(areas)
    return np.maximum(20, np.round(parcels * share)).astype(int)


def _tessellate(poly: shapely.Polygon, n: int, seat: np.ndarray, core_km: float,
                rng: np.random.Generator) -> np.ndarray:
    """Voronoi cells of n points (30% clustered around the seat) clipped to the district, as single Polygons."""
    sigma_deg = 1.5 * core_km / _KM_PER_DEG_LAT
    near = int(0.3 * n)
    pts = np.concatenate([_sample_in(poly, n - near, rng), _sample_in(poly, near, rng, (seat[0], seat[1], sigma_deg))])
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=poly, ordered=True))
    inside = shapely.contains(poly, cells)
    cells[~inside] = shapely.intersection(cells[~inside], poly)
    return _densify(_polygon_parts(cells), _MAX_EDGE_DEG)


def _villages(poly: shapely.Polygon, seat: np.ndarray, area_m2: float,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Town centres (the seat first) and village centres with their town, in the km frame."""
    km2 = area_m2 / 1e6
    n_towns = int(np.clip(round(km2 / 90), 3, 40))
    n_villages = int(np.clip(round(km2 / 9), 2 * n_towns, 400))
    towns = np.vstack([seat, _sample_in(poly, n_towns - 1, rng)])
    villages = _sample_in(poly, n_villages, rng)
    town_pts = shapely.points(np.column_stack(_km(towns[:, 0], towns[:, 1])))
    village_pts = shapely.points(np.column_stack(_km(villages[:, 0], villages[:, 1])))
    village_town = shapely.STRtree(town_pts).query_nearest(village_pts, all_matches=False)[1]
    return town_pts, village_pts, village_town


def _rank_within(groups: np.ndarray) -> np.ndarray:
    """0-based rank of each element among equal group values, in original order."""
    order = np.lexsort((np.arange(len(groups)), groups))
    sorted_groups = groups[order]
    starts = np.r_[0, np.flatnonzero(sorted_groups[1:] != sorted_groups[:-1]) + 1]
    first = np.repeat(starts, np.diff(np.r_[starts, len(groups)]))
    rank = np.empty(len(groups), dtype=int)
    rank[order] = np.arange(len(groups)) - first
    return rank


def _build_parcels(dist: _Districts, parcels: int, seed: int, report: Progress) -> _Parcels:
    """Tessellate every district, then attach locating units and the smooth fields that drive land classes."""
    quota = _parcel_quota(dist.areas, parcels)
    report("parcels", 0, len(dist.geoms))
    geoms, district, town, village, d_town = [], [], [], [], []
    for i, poly in enumerate(dist.geoms):
        rng = _rng(seed, 1, i)
        cells = _tessellate(poly, int(quota[i]), dist.seats[i], float(dist.core_km[i]), rng)
        town_pts, village_pts, village_town = _villages(poly, dist.seats[i], float(dist.areas[i]), rng)
        c = shapely.get_coordinates(shapely.centroid(cells))
        centres = shapely.points(np.column_stack(_km(c[:, 0], c[:, 1])))
        v = shapely.STRtree(village_pts).query_nearest(centres, all_matches=False)[1]
        _, dt = shapely.STRtree(town_pts[1:]).query_nearest(centres, all_matches=False, return_distance=True)
        rank = _rank_within(village_town)
        geoms.append(cells)
        district.append(np.full(len(cells), i))
        town.append(village_town[v])
        village.append(rank[v])
        d_town.append(dt)
        report("parcels", i + 1, len(dist.geoms))
    district_a = np.concatenate(district)
    geoms_a = np.concatenate(geoms)
    seq = _rank_within(district_a) + 1
    area = ellipsoidal_area_m2(geoms_a)
    d_town_a = np.concatenate(d_town)
    fields, u_seat = _fields(dist, geoms_a, district_a, d_town_a, seed)
    return _Parcels(geoms_a, district_a, seq, area, np.concatenate(town), np.concatenate(village), d_town_a, u_seat,
                    fields)


def _fields(dist: _Districts, geoms: np.ndarray, district: np.ndarray, d_town_km: np.ndarray,
            seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Smooth per-parcel scores: urban (seat and towns), terrain, river proximity, reservoirs, meadows."""
    rng = _rng(seed, 2)
    c = shapely.get_coordinates(shapely.centroid(geoms))
    lon, lat = c[:, 0], c[:, 1]
    x, y = _km(lon, lat)
    sx, sy = _km(dist.seats[district, 0], dist.seats[district, 1])
    d_seat = np.hypot(x - sx, y - sy)
    rivers = shapely.MultiLineString([np.column_stack(_km(*np.array(r).T)) for r in _RIVERS])
    d_river = shapely.distance(shapely.points(x, y), rivers)
    u_seat = np.exp(-d_seat / dist.core_km[district])
    urban = np.maximum(u_seat, 0.5 * np.exp(-d_town_km / 1.0)) + 0.06 * _smooth_noise(rng, x, y, 3, 12)
    # Mountains rise to the east and north; the parallel ridges of the central belt run NNE.
    trend = 1.2 * np.clip((lon - 106.6) / 2.0, 0, 1) + 0.8 * np.clip((lat - 30.9) / 0.9, 0, 1)
    ridges = np.cos(2 * np.pi * (0.866 * x - 0.5 * y) / 28.0) * np.exp(-(((lon - 107.3) / 0.8) ** 2))
    terrain = (trend + 0.5 * _smooth_noise(rng, x, y, 15, 150) + 0.8 * (1 - np.exp(-d_seat / 12.0))
               - 0.6 * np.exp(-d_river / 5.0) + 0.35 * ridges)
    fields = {
        "urban": urban,
        "low": -terrain,
        "high": terrain,
        "river": -d_river,
        "reservoir": _smooth_noise(rng, x, y, 4, 15) - 0.3 * np.abs(terrain - np.median(terrain)),
        "meadow": terrain + 0.8 * _smooth_noise(rng, x, y, 8, 40),
        "eco": terrain + 0.3 * _smooth_noise(rng, x, y, 10, 60),
    }
    return fields, u_seat


# --- land classes ----------------------------------------------------------------------------------------------


def _is_construction(codes: np.ndarray) -> np.ndarray:
    """Construction land as the survey counts it: groups 05–10 except rural roads (1006)."""
    return np.isin(codes.astype("U2"), ["05", "06", "07", "08", "09", "10"]) & (codes != "1006")


def _classify(par: _Parcels, seed: int) -> dict[int, np.ndarray]:
    """2019 land classes by area-share allocation on smooth scores; 2023 = 2019 plus ~2.5% realistic changes."""
    rng = _rng(seed, 3)
    n = len(par.geoms)
    total = par.area.sum()
    code = np.full(n, "0301", dtype="U4")
    free = np.ones(n, dtype=bool)
    for _label, field, noise, share, codes, weights in _ALLOCATION:
        chosen = _take(par.fields[field] + noise * rng.standard_normal(n), par.area, free, share * total)
        free[chosen] = False
        code[chosen] = rng.choice(codes, size=len(chosen), p=weights)
    terrain = par.fields["high"]
    _split_by_terrain(code, terrain, "0101", rng, (("0101", 0.5), ("0103", 1.0)), ("0102", 0.03))
    _split_by_terrain(code, terrain, "0301", rng, (("0302", 0.1), ("0301", 0.78), ("0305", 1.0)), ("0307", 0.06))
    return {SURVEY_YEARS[0]: code, SURVEY_YEARS[1]: _changes(code, par, rng)}


def _split_by_terrain(code: np.ndarray, terrain: np.ndarray, current: str, rng: np.random.Generator,
                      bands: tuple[tuple[str, float], ...], sprinkle: tuple[str, float]) -> None:
    """Refine one provisional code into sub-classes by terrain rank (e.g. paddy low, dry land high), in place."""
    idx = np.flatnonzero(code == current)
    rank = np.empty(len(idx))
    rank[np.argsort(terrain[idx], kind="stable")] = (np.arange(len(idx)) + 0.5) / max(len(idx), 1)
    new = np.full(len(idx), bands[-1][0], dtype="U4")
    for sub, upper in reversed(bands):
        new[rank < upper] = sub
    new[rng.random(len(idx)) < sprinkle[1]] = sprinkle[0]
    code[idx] = new


def _changes(code_2019: np.ndarray, par: _Parcels, rng: np.random.Generator) -> np.ndarray:
    """2023 classes: 60% of changes cultivated -> construction near towns, 20% forest -> cultivated, 20% orchard."""
    n_change = round(0.025 * len(code_2019))
    code = code_2019.copy()
    noise = rng.standard_normal(len(code))
    cultivated = np.char.startswith(code_2019, "01")
    forest = np.char.startswith(code_2019, "03")
    terrain = par.fields["high"]

    def top(mask: np.ndarray, score: np.ndarray, k: int) -> np.ndarray:
        idx = np.flatnonzero(mask)
        return idx[np.argsort(-score[idx], kind="stable")[:k]]

    built = top(cultivated, par.fields["urban"] + 0.05 * noise, round(0.6 * n_change))
    code[built] = rng.choice(_CULTIVATED_TO_CONSTRUCTION[0], size=len(built), p=_CULTIVATED_TO_CONSTRUCTION[1])
    cleared = top(forest, -terrain + 0.3 * noise, round(0.2 * n_change))
    code[cleared] = "0103"
    still = cultivated.copy()
    still[built] = False
    orchard = top(still, terrain + 0.3 * noise, n_change - len(built) - len(cleared))
    code[orchard] = "0201"
    return code


def _ridge_factors(par: _Parcels, seed: int) -> np.ndarray:
    """Slope-driven ridge deduction factor per parcel, 0.02–0.15 (steeper terrain, more field ridges)."""
    rng = _rng(seed, 4)
    terrain = par.fields["high"]
    rank = np.argsort(np.argsort(terrain, kind="stable"), kind="stable") / max(len(terrain) - 1, 1)
    return np.round(np.clip(0.02 + 0.13 * rank**1.3 + rng.normal(0, 0.01, len(rank)), 0.02, 0.15), 4)


def _ridge_deduction(code: np.ndarray, slope_factor: np.ndarray) -> np.ndarray:
    """KCXS of a survey year: the slope factor on cultivated land (paddies, being terraced flat, 30% less), else 0."""
    factor = np.where(code == "0101", np.maximum(0.7 * slope_factor, 0.02), slope_factor)
    return np.where(np.char.startswith(code, "01"), factor, 0.0)


def _urban_attribute(dist: _Districts, par: _Parcels, code: np.ndarray) -> np.ndarray:
    """CZCSXM for construction parcels: 201 city, 202 designated town, 203 village, 204 mining, 205 special."""
    core = par.u_seat >= 0.2
    out = np.where(core & dist.is_urban[par.district], "201",
                   np.where(core | (par.d_town_km < 1.5), "202", "203")).astype("U3")
    out[code == "0602"] = "204"
    out[code == "09"] = "205"
    out[~_is_construction(code)] = ""
    return out


# --- control lines ---------------------------------------------------------------------------------------------


def _control_lines(dist: _Districts, par: _Parcels, code: np.ndarray, seed: int,
                   report: Progress) -> dict[str, pa.Table]:
    """The three control lines as attribute tables with WKB geometry (EPSG:4490)."""
    rng = _rng(seed, 5)
    total = par.area.sum()
    forest = np.char.startswith(code, "03")
    red = _take(par.fields["eco"], par.area, forest, 0.21 * total)
    red_mask = np.zeros(len(code), dtype=bool)
    red_mask[red] = True
    cultivated = np.char.startswith(code, "01")
    construction = _is_construction(code)
    farm_score = par.fields["low"] - 2.0 * par.u_seat + 0.3 * rng.standard_normal(len(code))
    builders = {
        "STHX": lambda i, sel: _red_line(dist.geoms[i], par.geoms[sel & red_mask]),
        "YJJBNT": lambda i, sel: _farmland(par, sel & cultivated, farm_score),
        "CZKFBJ": lambda i, sel: _urban_boundary(dist, i, par, sel, construction),
    }
    tables = {}
    report("control lines", 0, len(builders))
    for k, (name, build) in enumerate(builders.items()):
        rows: list[tuple[str, shapely.Geometry]] = []
        for i, district_code in enumerate(dist.codes):
            rows += [(district_code, g) for g in build(i, par.district == i)]
        tables[name] = _control_line_table(dist, name, rows)
        report("control lines", k + 1, len(builders))
    return tables


def _dissolve(parcels: np.ndarray) -> shapely.Geometry:
    """Union of parcels of one district. They form a coverage (shared edges, no overlaps), which GEOS dissolves
    several times faster than a general union; should clipping ever leave edges a bit apart, use the general one."""
    merged = shapely.coverage_union_all(parcels)
    return merged if merged.is_valid else shapely.union_all(parcels)


def _closing(geom: shapely.Geometry, metres: float) -> shapely.Geometry:
    """Morphological closing (grow then shrink), so a line drawn over parcels bridges small gaps like a planner."""
    d = metres / _M_PER_DEG_LAT
    return shapely.buffer(shapely.buffer(geom, d, quad_segs=2), -d, quad_segs=2)


def _red_line(district: shapely.Polygon, selected: np.ndarray) -> list[shapely.Geometry]:
    """Ecological red line: closed union of the selected high forest, one feature per part of at least 0.5 km²."""
    if not len(selected):
        return []
    merged = shapely.intersection(_closing(_dissolve(selected), 300.0), district)
    parts = _polygon_parts(np.array([merged]))
    return list(parts[ellipsoidal_area_m2(parts) >= 5e5])


def _farmland(par: _Parcels, cultivated: np.ndarray, score: np.ndarray) -> list[shapely.Geometry]:
    """Permanent basic farmland: the best 72% (by area) of the district's cultivated parcels, one feature per town."""
    idx = np.flatnonzero(cultivated)
    if not len(idx):
        return []
    chosen = _take(score, par.area, cultivated, 0.72 * par.area[idx].sum())
    return [_dissolve(par.geoms[chosen[par.town[chosen] == t]]) for t in np.unique(par.town[chosen])]


def _urban_boundary(dist: _Districts, i: int, par: _Parcels, in_district: np.ndarray,
                    construction: np.ndarray) -> list[shapely.Geometry]:
    """Urban development boundary: the hole-free closed core of construction around the seat (one Polygon)."""
    core = in_district & (((par.u_seat >= 0.15) & construction) | (par.u_seat >= 0.5))
    idx = np.flatnonzero(in_district)
    core[idx[shapely.intersects_xy(par.geoms[idx], *dist.seats[i])]] = True  # never empty: the seat's own parcel
    merged = shapely.intersection(_closing(_dissolve(par.geoms[core]), 500.0), dist.geoms[i])
    parts = _polygon_parts(np.array([merged]))
    largest = parts[np.argmax(shapely.area(parts))]
    return [shapely.intersection(shapely.Polygon(largest.exterior), dist.geoms[i])]


def _control_line_table(dist: _Districts, name: str, rows: list[tuple[str, shapely.Geometry]]) -> pa.Table:
    """Shapefile attributes: HXBH (unique id), HXLX (type), MC (name), XZQDM (district), MJ (ellipsoidal m²)."""
    kind = CONTROL_LINE_FILES[name]
    codes = np.array([r[0] for r in rows], dtype="U6")
    geoms = np.array([r[1] for r in rows], dtype=object)
    number = _rank_within(codes) + 1
    names = dict(zip(dist.codes, dist.names))
    return pa.table({
        "HXBH": [f"{name}{c}{k:04d}" for c, k in zip(codes, number)],
        "HXLX": [kind] * len(rows),
        "MC": [f"{names[c]}{kind}{k}" for c, k in zip(codes, number)],
        "XZQDM": codes.tolist(),
        "MJ": np.round(ellipsoidal_area_m2(geoms), 2),
        "geometry": pa.array(shapely.to_wkb(geoms), pa.binary()),
    })


# --- hazards and buildings -------------------------------------------------------------------------------------


def _hazards(dist: _Districts, par: _Parcels, code: np.ndarray, n: int, seed: int) -> pa.Table:
    """Geological hazard points, weighted towards steep mountain parcels (forest, grass, bare rock)."""
    rng = _rng(seed, 6)
    group = code.astype("U2")
    weight = np.select([np.isin(group, ["03", "04", "12"]), group == "02", group == "01", _is_construction(code)],
                       [3.0, 2.0, 1.0, 0.3], 0.0)
    terrain = par.fields["high"]
    rank = np.argsort(np.argsort(terrain, kind="stable"), kind="stable") / max(len(terrain) - 1, 1)
    p = par.area * weight * (0.2 + rank)
    picked = np.sort(rng.choice(len(code), size=n, p=p / p.sum()))
    xy = _points_in_each(par.geoms[picked], rng)
    urbanish = _is_construction(code[picked])
    kind = np.where(urbanish, rng.choice(_HAZARD_TYPES, n, p=(0.45, 0.15, 0.02, 0.25, 0.13)),
                    rng.choice(_HAZARD_TYPES, n, p=(0.62, 0.15, 0.05, 0.03, 0.15)))
    scale = rng.choice(4, n, p=(0.76, 0.19, 0.045, 0.005))
    people = np.round(np.array([20, 120, 600, 2500])[scale] * np.exp(rng.normal(0, 0.8, n))).astype(np.int32)
    monitored = (scale >= 2) | (people >= 500) | (rng.random(n) < 0.08)
    district_codes = dist.codes[par.district[picked]]
    return pa.table({
        "ZHDBH": [f"{c}{k:06d}" for c, k in zip(district_codes, _rank_within(district_codes) + 1)],
        "ZHLX": kind.tolist(),
        "GM": np.array(_HAZARD_SCALES)[scale].tolist(),
        "WXRS": people,
        "JCJB": np.where(monitored, "专业监测", "群测群防").tolist(),
        "XZQDM": district_codes.tolist(),
        "geometry": pa.array(shapely.to_wkb(shapely.points(xy)), pa.binary()),
    })


def _with_delivery_defects(hazards: pa.Table) -> tuple[pa.Table, dict[str, str]]:
    """Append three hazard rows with the mistakes real registers contain, so the demo shows quarantine at work:
    a point keyed in with swapped/foreign coordinates (outside the region), a retired district code, and a
    row entered twice. They sit outside the parcel tessellation, so the one map is unaffected."""
    first = hazards.slice(0, 1).to_pylist()[0]
    rows = [
        {**first, "ZHDBH": "DEFECT-OUTSIDE", "geometry": shapely.to_wkb(shapely.Point(114.3, 30.6))},
        {**first, "ZHDBH": "DEFECT-DISTRICT", "XZQDM": "500199"},
        {**first},  # the first hazard again: its id is now duplicated
    ]
    defects = {"DEFECT-OUTSIDE": "GEOM_OUTSIDE_REGION", "DEFECT-DISTRICT": "DISTRICT_UNKNOWN",
               first["ZHDBH"]: "DUPLICATE_KEY"}
    return pa.concat_tables([hazards, pa.Table.from_pylist(rows, schema=hazards.schema)]), defects


def _metres_per_degree(lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Metres per degree of longitude and latitude on the CGCS2000 ellipsoid, so footprints keep their size."""
    e2 = 1 / CGCS2000_RF * (2 - 1 / CGCS2000_RF)
    sin2 = np.sin(np.radians(lat)) ** 2
    w = np.sqrt(1 - e2 * sin2)
    return (np.pi / 180 * CGCS2000_A * np.cos(np.radians(lat)) / w,
            np.pi / 180 * CGCS2000_A * (1 - e2) / w**3)


def _rectangles(centre: np.ndarray, width_m: np.ndarray, length_m: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotated rectangles given in metres around lon/lat centres."""
    local = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5]])
    dx = local[None, :, 0] * width_m[:, None]
    dy = local[None, :, 1] * length_m[:, None]
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    per_lon, per_lat = _metres_per_degree(centre[:, 1])
    ex = (dx * cos - dy * sin) / per_lon[:, None]
    ny = (dx * sin + dy * cos) / per_lat[:, None]
    return shapely.polygons(np.stack([centre[:, :1] + ex, centre[:, 1:] + ny], axis=-1))


def _place_buildings(par: _Parcels, eligible: np.ndarray, target: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rejection-sample non-overlapping footprints inside eligible parcels, denser near the seat."""
    weight = par.area[eligible] * par.u_seat[eligible]
    weight /= weight.sum()
    shapely.prepare(par.geoms[eligible])
    placed: list[np.ndarray] = []
    owners: list[np.ndarray] = []
    have = 0
    for _ in range(40):
        if have >= target:
            break
        m = int(1.6 * (target - have)) + 32
        owner = eligible[rng.choice(len(eligible), size=m, p=weight)]
        parcel = par.geoms[owner]
        centre = _points_in_each(parcel, rng)
        rect = _rectangles(centre, rng.uniform(10, 60, m), rng.uniform(10, 60, m), rng.uniform(0, np.pi, m))
        ok = shapely.contains_properly(parcel, rect)
        rect, owner = rect[ok], owner[ok]
        clash = np.zeros(len(rect), dtype=bool)
        if placed:
            clash[shapely.STRtree(np.concatenate(placed)).query(rect, predicate="intersects")[0]] = True
        left, right = shapely.STRtree(rect).query(rect, predicate="intersects")
        clash[left[right < left]] = True
        keep = np.flatnonzero(~clash)[: target - have]
        placed.append(rect[keep])
        owners.append(owner[keep])
        have += len(keep)
    return np.concatenate(placed), np.concatenate(owners)


def _buildings(dist: _Districts, par: _Parcels, code: np.ndarray, target: int, seed: int) -> pa.Table:
    """Building footprints in the urban districts' construction parcels near seats, with usage, storeys, height."""
    rng = _rng(seed, 7)
    eligible = np.flatnonzero(dist.is_urban[par.district] & np.isin(code, BUILDING_PARCEL_CODES)
                              & (par.u_seat >= 0.05))
    geoms, owner = _place_buildings(par, eligible, target, rng)
    n = len(geoms)
    use = np.empty(n, dtype=int)
    for parcel_code, mix in _USE_BY_CLASS.items():
        sel = code[owner] == parcel_code
        use[sel] = rng.choice(len(_BUILDING_USES), size=int(sel.sum()), p=mix)
    yt = np.array(_BUILDING_USES)[use]
    typical = np.select([yt == "工业", code[owner] == "0702"], [2.0, 2.5],
                        2.0 + 24.0 * par.u_seat[owner] * np.where(yt == "公共服务", 0.4, 1.0))
    storeys = np.clip(np.round(typical * np.exp(rng.normal(0, 0.35, n))), 1, 40).astype(np.int32)
    height = np.round(storeys * 3.0 + np.where(yt == "工业", 3.0, 0.0) + rng.normal(0, 0.4, n).clip(-1, 1), 2)
    district_codes = dist.codes[par.district[owner]]
    named = rng.random(n) < 0.15
    stems = np.array(_ESTATE_STEMS)[rng.integers(0, len(_ESTATE_STEMS), n)]
    number = rng.integers(1, 30, n)
    names = [f"{s}{_NAME_SUFFIX[u]}{k}栋" if is_named else "" for s, u, k, is_named in zip(stems, yt, number, named)]
    return pa.table({
        "JZWBH": [f"{c}{k:08d}" for c, k in zip(district_codes, _rank_within(district_codes) + 1)],
        "MC": names,
        "YT": yt.tolist(),
        "CS": storeys,
        "GD": height,
        "XZQDM": district_codes.tolist(),
        "geometry": pa.array(shapely.to_wkb(geoms), pa.binary()),
    })


# --- planted truth for the one map -------------------------------------------------------------------------------

PLANTED_RULES = ("CONFLICT_CONSTRUCTION_IN_RED_LINE", "CONFLICT_NON_FARM_USE_IN_BASIC_FARMLAND",
                 "CONFLICT_BUILDING_IN_BASIC_FARMLAND", "CONFLICT_CONSTRUCTION_OUTSIDE_URBAN_BOUNDARY",
                 "CONFLICT_CULTIVATED_TO_CONSTRUCTION")


def parcel_ids(dist: _Districts, par: _Parcels) -> np.ndarray:
    """BSM, the parcel id the demo feed contracts map to parcel_id."""
    return np.strings.add(dist.codes[par.district], np.strings.zfill(par.seq.astype(str), 8))


def _plant_conflicts(dist: _Districts, par: _Parcels, dlbm: dict[int, np.ndarray], lines: dict[str, pa.Table],
                     buildings: pa.Table, k: int, seed: int) -> tuple[pa.Table, dict[str, list[dict]]]:
    """Change k parcels' 2023 class per rule so each breaks exactly that rule with its whole area, and place
    k buildings inside farmland. Parcels are taken wholly inside (or wholly outside) the lines, unchanged since
    2019, so the conflict area is the parcel's ellipsoidal area. Updates dlbm[2023] in place."""
    rng = _rng(seed, 8)
    old, new = dlbm[SURVEY_YEARS[0]], dlbm[SURVEY_YEARS[1]]
    line_geoms = {name: shapely.from_wkb(t.column("geometry").to_numpy(zero_copy_only=False))
                  for name, t in lines.items()}
    trees = {name: shapely.STRtree(g) for name, g in line_geoms.items()}

    def inside(name: str) -> np.ndarray:
        mask = np.zeros(len(par.geoms), dtype=bool)
        mask[trees[name].query(par.geoms, predicate="covered_by")[0]] = True
        return mask

    def touching(name: str) -> np.ndarray:
        mask = np.zeros(len(par.geoms), dtype=bool)
        mask[trees[name].query(par.geoms, predicate="intersects")[0]] = True
        return mask

    unchanged = old == new
    forest, cultivated = np.char.startswith(new, "03") & unchanged, np.char.startswith(new, "01") & unchanged
    free = np.ones(len(par.geoms), dtype=bool)
    ids = parcel_ids(dist, par)
    planted: dict[str, list[dict]] = {}

    def pick(rule: str, mask: np.ndarray, code: str) -> np.ndarray:
        idx = np.flatnonzero(mask & free)
        chosen = np.sort(rng.choice(idx, size=min(k, len(idx)), replace=False))
        free[chosen] = False
        new[chosen] = code
        planted[rule] = [{"id": str(ids[i]), "area_m2": float(par.area[i])} for i in chosen]
        return chosen

    any_line = touching("STHX") | touching("YJJBNT") | touching("CZKFBJ")
    pick("CONFLICT_CONSTRUCTION_IN_RED_LINE", forest & inside("STHX") & ~touching("CZKFBJ"), "0601")
    pick("CONFLICT_NON_FARM_USE_IN_BASIC_FARMLAND", cultivated & inside("YJJBNT"), "0201")
    pick("CONFLICT_CONSTRUCTION_OUTSIDE_URBAN_BOUNDARY", forest & ~any_line, "0702")
    pick("CONFLICT_CULTIVATED_TO_CONSTRUCTION", cultivated & ~any_line, "0601")
    hosts = np.flatnonzero(cultivated & inside("YJJBNT") & free)
    hosts = np.sort(rng.choice(hosts, size=min(k, len(hosts)), replace=False))
    free[hosts] = False
    rects = _rectangles(shapely.get_coordinates(shapely.point_on_surface(par.geoms[hosts])),
                        np.full(len(hosts), 12.0), np.full(len(hosts), 18.0), rng.uniform(0, np.pi, len(hosts)))
    ok = shapely.contains_properly(par.geoms[hosts], rects)
    hosts, rects = hosts[ok], rects[ok]
    codes = dist.codes[par.district[hosts]]
    building_ids = [f"{c}9{n:07d}" for n, c in enumerate(codes)]
    planted["CONFLICT_BUILDING_IN_BASIC_FARMLAND"] = [
        {"id": b, "area_m2": float(a)} for b, a in zip(building_ids, ellipsoidal_area_m2(rects))]
    extra = pa.table({"JZWBH": building_ids, "MC": [""] * len(hosts), "YT": ["住宅"] * len(hosts),
                      "CS": pa.array(np.full(len(hosts), 2, dtype=np.int32)), "GD": np.full(len(hosts), 6.0),
                      "XZQDM": codes.tolist(), "geometry": pa.array(shapely.to_wkb(rects), pa.binary())})
    return pa.concat_tables([buildings, extra.cast(buildings.schema)]), planted


def _plant_overlap(dist: _Districts, par: _Parcels) -> tuple[np.ndarray, dict]:
    """Grow one interior parcel by about 50 m over its neighbours in the latest survey (within its district)."""
    interior = shapely.contains_properly(dist.geoms[par.district], shapely.buffer(par.geoms, 0.001))
    i = int(np.flatnonzero(interior)[len(par.geoms) // 2 % max(int(interior.sum()), 1)])
    grown = shapely.buffer(par.geoms[i], 0.0005, quad_segs=4)
    geoms = par.geoms.copy()
    geoms[i] = _densify(np.array([grown]), _MAX_EDGE_DEG)[0]
    overlap = float(ellipsoidal_area_m2(np.array([geoms[i]]))[0] - par.area[i])
    return geoms, {"parcel_id": str(parcel_ids(dist, par)[i]), "survey_year": SURVEY_YEARS[1], "overlap_m2": overlap}


# --- writers ---------------------------------------------------------------------------------------------------


@contextmanager
def _reproducible_gdal() -> Iterator[None]:
    """Pin GPKG timestamps and FileGDB UUIDs so identical input writes identical bytes; restore options after."""
    options = {"OGR_CURRENT_DATE": _FIXED_DATE, "OPENFILEGDB_REPRODUCIBLE_UUID": "YES"}
    previous = {k: pyogrio.get_gdal_config_option(k) for k in options}
    pyogrio.set_gdal_config_options(options)
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options(previous)


def _write_all(root: Path, dist: _Districts, par: _Parcels, dlbm: dict[int, np.ndarray], slope_factor: np.ndarray,
               lines: dict[str, pa.Table], hazards: pa.Table, buildings: pa.Table,
               report: Progress, geoms_by_year: dict[int, np.ndarray]) -> tuple[dict[str, list[Path]], dict[str, int]]:
    """Write every dataset (reproducibly) and return the manifest's files and row counts."""
    total = 1 + len(SURVEY_YEARS) * len(dist.codes) + len(lines) + 2
    written = 0

    def step() -> None:
        nonlocal written
        written += 1
        report("writing", written, total)

    files: dict[str, list[Path]] = {"control_lines": []}
    counts: dict[str, int] = {"districts": len(dist.codes), "control_lines": 0, "hazards": hazards.num_rows,
                              "buildings": buildings.num_rows}
    with _reproducible_gdal():
        files["districts"] = [_write_districts(root / "districts", dist)]
        step()
        for year in SURVEY_YEARS:
            files[f"parcels_{year}"] = _write_parcels(root / "parcels" / str(year), dist, par, dlbm[year],
                                                      slope_factor, year, step, geoms_by_year[year])
            counts[f"parcels_{year}"] = len(par.geoms)
        for name, table in lines.items():
            files["control_lines"].append(_write_control_line(root / "control_lines", name, table))
            counts["control_lines"] += table.num_rows
            step()
        files["hazards"] = [_write_table(hazards, root / "hazards" / "dzzh_points.geojson", None, "Point")]
        step()
        files["buildings"] = [_write_table(buildings, root / "buildings" / "buildings.gdb", "EPSG:4490", "Polygon",
                                           layer="JZW", driver="OpenFileGDB")]
        step()
    return files, counts


def _write_table(table: pa.Table, path: Path, crs: str | None, geometry_type: str, **options: object) -> Path:
    """Write an attribute table with a WKB `geometry` column through GDAL; crs None means no CRS member."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="'crs' was not provided")
        pyogrio.write_arrow(table, path, geometry_name="geometry", geometry_type=geometry_type, crs=crs, **options)
    return path


def _write_districts(folder: Path, dist: _Districts) -> Path:
    """DataV-style district file: GCJ-02 coordinates, integer adcode, Chinese name."""
    table = pa.table({
        "adcode": pa.array(dist.codes.astype(np.int32)),
        "name": dist.names.tolist(),
        "geometry": pa.array(shapely.to_wkb(_to_gcj02(dist.geoms)), pa.binary()),
    })
    return _write_table(table, folder / "cq_districts.geojson", None, "Polygon")


def _write_parcels(folder: Path, dist: _Districts, par: _Parcels, code: np.ndarray, slope_factor: np.ndarray,
                   year: int, step: Callable[[], None], geoms: np.ndarray) -> list[Path]:
    """One DLTB GeoPackage per district, in the district's Gauss–Krüger zone; TBMJ is the projected area."""
    classes, inverse = np.unique(code, return_inverse=True)
    dlmc = np.array([land_classes()[c].name_zh for c in classes])[inverse]
    czcsxm = _urban_attribute(dist, par, code)
    factor = np.round(_ridge_deduction(code, slope_factor), 4)
    paths = []
    for i, district_code in enumerate(dist.codes):
        sel = np.flatnonzero(par.district == i)
        epsg = int(dist.epsg[i])
        projected = _project(geoms[sel], epsg)
        tbmj = np.round(shapely.area(projected), 2)
        seq = par.seq[sel].astype(str)
        zldwdm = np.strings.add(np.strings.add(district_code, np.strings.zfill((par.town[sel] + 1).astype(str), 3)),
                                np.strings.zfill((par.village[sel] + 1).astype(str), 3))
        table = pa.table({
            "BSM": np.strings.add(district_code, np.strings.zfill(seq, 8)),
            "TBBH": seq,
            "DLBM": code[sel],
            "DLMC": dlmc[sel],
            "ZLDWDM": zldwdm,
            "TBMJ": tbmj,
            "KCXS": factor[sel],
            "KCMJ": np.round(tbmj * factor[sel], 2),
            "CZCSXM": czcsxm[sel],
            "SJNF": pa.array(np.full(len(sel), year, dtype=np.int32)),
            "geometry": pa.array(shapely.to_wkb(projected), pa.binary()),
        })
        paths.append(_write_table(table, folder / f"DLTB_{district_code}_{year}.gpkg", f"EPSG:{epsg}", "Polygon",
                                  layer="DLTB"))
        step()
    return paths


def _write_control_line(folder: Path, name: str, table: pa.Table) -> Path:
    """Shapefile with a GBK .dbf and a .cpg saying so, as planning offices deliver them."""
    # GDAL recodes the UTF-8 strings to GBK and writes the .cpg itself; the pinned header date keeps bytes stable.
    return _write_table(table, folder / f"{name}.shp", "EPSG:4490", "Polygon", encoding="GBK",
                        layer_options={"DBF_DATE_LAST_UPDATE": _FIXED_DATE[:10]})
