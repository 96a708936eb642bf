"""Lossless readers: every record of a delivered file is in silver or quarantine, or the file fails its batch with
one line naming the file, the counts and what to do, and the lake stays as it was (docs/lake-guarantees.md)."""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest
import shapely

from lake import delta_io
from lake.batch_ingest import ingest_landing
from lake.contracts import get_contract
from lake.demo_cim import houses, write_citygml, write_cityjson, write_ifc
from lake.errors import FeedReadError
from lake.ingest import ingest_source, source_uri_of
from lake.registry import BRONZE, INGEST_LOG, QUARANTINE, SILVER, SURVEY_TABLES
from tests.survey_files import (CONTROL_LINES_CONTRACT, OGR_PARCELS_CONTRACT, PARCELS_CONTRACT, cut_file,
                                good_parcels, parcel, parcel_boxes, shorten_dbf, shorten_shapes, write_geojson,
                                write_parcels_gpkg, write_shapefile)

pytestmark = pytest.mark.usefixtures("home")


# --- helpers --------------------------------------------------------------------------------------------------
def landed(table: str, source: Path) -> tuple[int, int, int]:
    """Rows of one source in (silver, quarantine, bronze)."""
    uri = source_uri_of(source)
    return tuple(int(pc.sum(pc.equal(delta_io.read_table(spec, columns=["_source_uri"]).column("_source_uri"),
                                     uri)).as_py() or 0)
                 for spec in (SILVER[table], QUARANTINE[table], BRONZE[table]))


def versions(table: str) -> dict[str, int | None]:
    return {s.key: (t.version() if (t := delta_io.open_table(s)) else None)
            for s in (SILVER[table], QUARANTINE[table], BRONZE[table])}


def quarantined(table: str, source: Path) -> list[dict]:
    rows = delta_io.read_table(QUARANTINE[table], columns=["_source_uri", "_row_number", "rule_id", "reason"])
    return sorted((r for r in rows.to_pylist() if r["_source_uri"] == source_uri_of(source)),
                  key=lambda r: r["_row_number"])


def fails_cleanly(source: Path, contract_name: str, table: str, match: str) -> str:
    """Ingesting `source` fails with one line naming it, logs the failed batch and changes no table."""
    before = versions(table)
    with pytest.raises(FeedReadError, match=match) as failure:
        ingest_source(source, get_contract(contract_name))
    message = str(failure.value)
    assert "\n" not in message and source.name in message.split(": ", 1)[0]
    assert versions(table) == before
    log = delta_io.read_table(INGEST_LOG).to_pylist()
    assert [r["message"] for r in log if r["source_uri"] == source_uri_of(source) and r["status"] == "failed"] == \
        [message]
    return message


@pytest.fixture
def lines_feed(write_contract) -> Callable[..., str]:
    """A control-lines shapefile feed; keyword arguments become contract lines (e.g. encoding='GBK')."""
    def _feed(name: str = "lines", **extra: str) -> str:
        return write_contract(CONTROL_LINES_CONTRACT.format(
            feed=name, extra="\n".join(f"{k}: {v}" for k, v in extra.items())))
    return _feed


# --- shapefile parts that disagree on their records -------------------------------------------------------------
def _cut_inside_shape_48(shp: Path) -> None:
    offset = struct.unpack_from(">i", shp.with_suffix(".shx").read_bytes(), 100 + 8 * 47)[0] * 2
    cut_file(shp, offset + 20)


PARTIAL_SHAPEFILES = {  # case: (damage to a 50-record shapefile, what the error names, what each lost record lacks)
    "dbf_3_short": (lambda shp: shorten_dbf(shp, 47), r"the \.dbf has 47 records but the \.shp 50 shapes",
                    "no .dbf record (the .dbf has 47)"),
    "dbf_cut_off": (lambda shp: shorten_dbf(shp, 47, header_counts_all=True),
                    r"the \.dbf header counts 50 records but the file holds only 47", "beyond the end of the .dbf"),
    "shp_and_shx_3_short": (lambda shp: shorten_shapes(shp, 47), r"the \.dbf has 50 records but the \.shp 47 shapes",
                            "no shape (the .shp has 47)"),
    "shx_3_short": (lambda shp: shorten_shapes(shp, 47, shp_too=False),
                    r"the \.shp holds 50 shapes but its \.shx indexes only 47", "not indexed by the .shx"),
    "shp_cut_off": (_cut_inside_shape_48, r"the \.shx indexes 50 shapes but 3 of them lie beyond the end of the \.shp",
                    "beyond the end of the .shp"),
}


@pytest.mark.parametrize("case", PARTIAL_SHAPEFILES)
def test_shapefile_parts_that_disagree_fail_naming_the_counts(home: Path, lines_feed, case: str) -> None:
    damage, counts, _ = PARTIAL_SHAPEFILES[case]
    feed = lines_feed()
    intact = write_shapefile(home / "landing/lines/B.shp", 5)
    ingest_source(intact, get_contract(feed))
    shp = write_shapefile(home / "landing/lines/A.shp", 50)
    damage(shp)
    message = fails_cleanly(shp, feed, "control_lines", rf"A\.shp: the shapefile's parts disagree: {counts}")
    assert "3 of its 50 records are incomplete" in message
    assert f"`on_partial_shapefile: quarantine` in feed contract {feed}" in message
    assert landed("control_lines", shp) == (0, 0, 0)
    assert landed("control_lines", intact) == (5, 0, 5)


@pytest.mark.parametrize("case", PARTIAL_SHAPEFILES)
def test_partial_shapefile_quarantines_the_incomplete_records_by_number(home: Path, lines_feed, case: str) -> None:
    damage, _, lacks = PARTIAL_SHAPEFILES[case]
    feed = lines_feed("partial_lines", on_partial_shapefile="quarantine")
    shp = write_shapefile(home / "landing/lines/A.shp", 50)
    damage(shp)
    result = ingest_source(shp, get_contract(feed))
    assert (result.rows_read, result.rows_silver, result.rows_quarantined) == (50, 47, 3)
    assert landed("control_lines", shp) == (47, 3, 50)  # silver + quarantine = the 50 records of the file
    lost = quarantined("control_lines", shp)
    assert [(r["_row_number"], r["rule_id"]) for r in lost] == [(n, "SHAPEFILE_PARTIAL") for n in (48, 49, 50)]
    assert all(r["reason"].startswith(f"record {r['_row_number']}: ") and lacks in r["reason"] for r in lost)
    silver = delta_io.read_table(SILVER["control_lines"]).column("line_id").to_pylist()
    assert sorted(silver) == sorted(f"L{i}" for i in range(47))


def test_dbf_deleted_records_are_skipped_without_misaligning_shapes(home: Path, lines_feed) -> None:
    shp = write_shapefile(home / "landing/lines/A.shp", 10)
    dbf = bytearray(shp.with_suffix(".dbf").read_bytes())
    header_length, record_length = struct.unpack("<HH", dbf[8:12])
    dbf[header_length + 3 * record_length] = ord("*")  # dBASE deletion flag on record 4 (L3)
    shp.with_suffix(".dbf").write_bytes(bytes(dbf))
    result = ingest_source(shp, get_contract(lines_feed()))
    assert (result.rows_read, result.rows_silver) == (9, 9)
    silver = delta_io.read_table(SILVER["control_lines"], columns=["line_id", "bbox_xmin"]).to_pylist()
    assert sorted(r["line_id"] for r in silver) == sorted(f"L{i}" for i in range(10) if i != 3)
    for row in silver:  # each record's attributes sit with its own shape (L<i> lies at 106.5 + i/1000)
        assert row["bbox_xmin"] == pytest.approx(106.5 + int(row["line_id"][1:]) * 0.001, abs=1e-9)


# --- .dbf text encodings ----------------------------------------------------------------------------------------
def _relabel(shp: Path, cpg: str | None) -> None:
    if cpg is None:
        shp.with_suffix(".cpg").unlink()
    else:
        shp.with_suffix(".cpg").write_text(cpg, encoding="ascii")


@pytest.mark.parametrize("written, cpg, contract_encoding, match", [
    ("UTF-8", "GBK", None, r"A\.shp: the \.dbf text is not valid GBK: record 1, field HXLX has bytes .* do not "
                           r"decode \(50 records affected\); its \.cpg says 'GBK'; correct the \.cpg"),
    ("UTF-8", None, "GBK", r"A\.shp: the \.dbf text is not valid GBK: record 1, field HXLX .*feed contract "
                           r"lines says `encoding: GBK`"),
    ("GBK", "UTF-8", None, r"A\.shp: the \.dbf field names are not valid UTF-8 .*its \.cpg says 'UTF-8'"),
])
def test_dbf_text_that_does_not_decode_fails_never_replaced(home: Path, lines_feed, written: str, cpg: str | None,
                                                            contract_encoding: str | None, match: str) -> None:
    shp = write_shapefile(home / "landing/lines/A.shp", 50, encoding=written)
    _relabel(shp, cpg)
    feed = lines_feed(**({"encoding": contract_encoding} if contract_encoding else {}))
    fails_cleanly(shp, feed, "control_lines", match)


def test_code_page_cpg_and_chinese_field_names_decode(home: Path, lines_feed) -> None:
    shp = write_shapefile(home / "landing/lines/A.shp", 4, encoding="GBK")
    _relabel(shp, "936")  # ArcGIS writes the Windows code page number
    result = ingest_source(shp, get_contract(lines_feed()))
    assert result.rows_silver == 4
    silver = delta_io.read_table(SILVER["control_lines"], columns=["line_type", "name"]).to_pylist()
    assert {(r["line_type"], r["name"]) for r in silver} == {("ecological_red_line", "缙云山")}


# --- text longer than the canonical maximum ----------------------------------------------------------------------
def test_overlong_text_is_quarantined_with_rule_field_and_length(home: Path) -> None:
    def hazard(i: int, kind: str) -> dict:
        return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [106.5 + i * 0.01, 29.5]},
                "properties": {"ZHDBH": f"H{i}", "ZHLX": kind, "GM": "小型", "WXRS": 10, "JCJB": "群测群防",
                               "XZQDM": "500112"}}
    ten_mb = "x" * (10 * 1024 * 1024)
    path = write_geojson(home / "landing/survey/hazards/h.geojson",
                         [hazard(i, "滑坡") for i in range(4)] + [hazard(4, ten_mb)])
    result = ingest_source(path, get_contract("demo_hazard_points"))
    assert (result.rows_read, result.rows_silver, result.rows_quarantined) == (5, 4, 1)
    assert landed("hazard_points", path) == (4, 1, 5)
    [row] = quarantined("hazard_points", path)
    assert (row["_row_number"], row["rule_id"]) == (5, "FIELD_TOO_LONG")
    assert row["reason"] == f"hazard_type (field ZHLX) is {len(ten_mb)} characters long; at most 254"
    assert max(len(v) for v in delta_io.read_table(SILVER["hazard_points"]).column("hazard_type").to_pylist()) == 2


def test_survey_codes_longer_than_the_standard_are_quarantined(home: Path, write_contract) -> None:
    feed = write_contract(PARCELS_CONTRACT)
    path = write_geojson(home / "landing/parcels/a.geojson",
                         good_parcels(3) + [parcel("5001120000000000001", x=106.6), parcel("P9", dlbm="010101")])
    result = ingest_source(path, get_contract(feed))
    assert landed("parcels", path) == (3, 2, 5)
    reasons = [(r["rule_id"], r["reason"]) for r in quarantined("parcels", path)]
    assert reasons == [("FIELD_TOO_LONG", "parcel_id (field BSM) is 19 characters long; at most 18"),
                       ("FIELD_TOO_LONG", "land_class_code (field DLBM) is 6 characters long; at most 5")]
    assert result.rows_silver == 3


def test_every_survey_text_column_has_a_maximum() -> None:
    for spec in SURVEY_TABLES:
        strings = {f.name for f in spec.columns if str(f.type) == "string"}
        assert set(spec.text_limits()) == strings, spec.name
    limits = SILVER["parcels"].text_limits()
    assert (limits["land_class_code"], limits["locating_unit_code"], limits["district_code"]) == (5, 19, 6)


# --- file names that are not UTF-8 -------------------------------------------------------------------------------
def test_file_name_not_utf8_fails_naming_it_and_the_batch_goes_on(home: Path, write_contract) -> None:
    write_contract(PARCELS_CONTRACT)
    write_geojson(Path(os.fsdecode(os.fsencode(home / "landing/parcels") + b"/\xb5\xd8\xc0\xe0.geojson")),
                  good_parcels(2, prefix="G"))  # 地类.geojson, named in GBK
    good = write_geojson(home / "landing/parcels/ok.geojson", good_parcels(3))
    results = {Path(r.source).name: r for r in ingest_landing("parcels")}
    escaped = "\\xb5\\xd8\\xc0\\xe0.geojson"
    assert set(results) == {escaped, "ok.geojson"}
    assert results["ok.geojson"].rows_silver == 3 and landed("parcels", good) == (3, 0, 3)
    failed = results[escaped]
    assert failed.status == "failed" and "\n" not in failed.message
    assert failed.message.startswith(f"{source_uri_of(good).rsplit('/', 1)[0]}/{escaped}: the file name is not "
                                     "valid UTF-8 (read as GBK it is '地类.geojson'); rename it to UTF-8")
    log = {r["source_uri"]: r for r in delta_io.read_table(INGEST_LOG).to_pylist()}
    assert log[failed.source]["status"] == "failed" and log[failed.source]["message"] == failed.message
    assert delta_io.read_table(SILVER["parcels"]).num_rows == 3


# --- truncated, empty and zero-record files of every format ------------------------------------------------------
def _largest_gdbtable(gdb: Path) -> Path:
    return max(gdb.glob("*.gdbtable"), key=lambda p: p.stat().st_size)


FORMATS: dict[str, tuple[str, str, Callable[[Path, str, int], Path]]] = {
    # format: (feed, or the text of its contract; table; writer of delivery `name` with n records under landing/)
    "gpkg": (OGR_PARCELS_CONTRACT.format(feed="gpkg_parcels", format="gpkg", extra="layer: DLTB"), "parcels",
             lambda home, name, n: write_parcels_gpkg(home / f"landing/ogr/{name}.gpkg", {"DLTB": parcel_boxes(n)})),
    "filegdb": (OGR_PARCELS_CONTRACT.format(feed="gdb_parcels", format="filegdb", extra="layer: DLTB"), "parcels",
                lambda home, name, n: write_parcels_gpkg(home / f"landing/ogr/{name}.gdb", {"DLTB": parcel_boxes(n)},
                                                         driver="OpenFileGDB")),
    "shapefile": (CONTROL_LINES_CONTRACT.format(feed="lines", extra=""), "control_lines",
                  lambda home, name, n: write_shapefile(home / f"landing/lines/{name}.shp", n)),
    "geojson": (PARCELS_CONTRACT, "parcels",
                lambda home, name, n: write_geojson(home / f"landing/parcels/{name}.geojson", good_parcels(n))),
    "cityjson": ("demo_cim_cityjson", "buildings",
                 lambda home, name, n: _cim(write_cityjson, home / f"landing/cim/{name}.city.json", n)),
    "citygml": ("demo_cim_citygml", "buildings",
                lambda home, name, n: _cim(write_citygml, home / f"landing/cim/{name}.gml", n)),
    "ifc": ("demo_cim_ifc", "buildings", lambda home, name, n: _cim(write_ifc, home / f"landing/cim/{name}.ifc", n)),
}


def _cim(writer: Callable, path: Path, n: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer(path, houses(n, prefix=f"T{n}"))
    return path


def _feed(fmt: str, write_contract) -> str:
    contract = FORMATS[fmt][0]
    return write_contract(contract) if contract.lstrip().startswith("feed:") else contract


def _remove(delivery: Path) -> None:
    """Take a delivery out of landing: a FileGDB folder, a shapefile with its parts, or the file."""
    if delivery.is_dir():
        shutil.rmtree(delivery)
    for part in delivery.parent.glob(delivery.stem + ".*"):
        part.unlink()


TRUNCATIONS = {  # case: (format, how the delivery is cut, what the error says)
    "gpkg": ("gpkg", lambda p: cut_file(p, 0.6), r"truncated GeoPackage: its SQLite header counts \d+ bytes but the "
                                                  r"file has \d+; re-deliver the whole file"),
    "filegdb": ("filegdb", lambda p: cut_file(_largest_gdbtable(p), 0.5),
                r"layer 'DLTB' declares 300 features but only \d+ can be read: the file is truncated or damaged; "
                r"re-deliver the whole file"),
    "shp": ("shapefile", lambda p: cut_file(p, 0.5), r"the \.shx indexes 300 shapes but \d+ of them lie beyond the "
                                                     r"end of the \.shp"),
    "dbf": ("shapefile", lambda p: cut_file(p.with_suffix(".dbf"), 0.5),
            r"the \.dbf header counts 300 records but the file holds only \d+ \(cut off\)"),
    "dbf_header": ("shapefile", lambda p: cut_file(p.with_suffix(".dbf"), 40),
                   r"the \.dbf header is cut off or damaged .*re-deliver the whole file"),
    "shx": ("shapefile", lambda p: cut_file(p.with_suffix(".shx"), 0.5),
            r"the \.shx is cut off or damaged .*re-deliver the whole file"),
    "geojson": ("geojson", lambda p: cut_file(p, 0.5), r"invalid JSON at line 1 column \d+ .*cut off or damaged; "
                                                       r"re-deliver the whole file"),
    "cityjson": ("cityjson", lambda p: cut_file(p, 0.5), r"not valid JSON .*cut off or damaged; re-deliver"),
    "citygml": ("citygml", lambda p: cut_file(p, 0.5), r"not readable as CityGML \(XML\).*cut off or damaged: "
                                                       r"re-deliver"),
    "ifc": ("ifc", lambda p: cut_file(p, 0.5), r"truncated IFC: .*re-copy the whole file"),
}


@pytest.mark.parametrize("case", TRUNCATIONS)
def test_truncated_file_fails_its_batch_and_changes_nothing(home: Path, write_contract, case: str) -> None:
    fmt, cut, match = TRUNCATIONS[case]
    _, table, write = FORMATS[fmt]
    feed = _feed(fmt, write_contract)
    intact = write(home, "intact", 2)
    result = ingest_source(intact, get_contract(feed))
    assert (result.rows_read, result.rows_silver) == (2, 2)
    source = write(home, "cut", 3 if table == "buildings" else 300)
    cut(source)
    fails_cleanly(source, feed, table, match)
    assert landed(table, source) == (0, 0, 0) and landed(table, intact) == (2, 0, 2)


EMPTIES = {  # case: (format, which file of a delivery is left empty, what the error says)
    "gpkg": ("gpkg", lambda p: p, r"empty file \(0 bytes\): it was cut off or never written; deliver it again"),
    "shp": ("shapefile", lambda p: p, r"empty file \(0 bytes\)"),
    "dbf": ("shapefile", lambda p: p.with_suffix(".dbf"), r"the \.dbf is 0 bytes, shorter than its header; re-deliver"),
    "geojson": ("geojson", lambda p: p, r"empty file \(0 bytes\)"),
    "cityjson": ("cityjson", lambda p: p, r"empty file \(0 bytes\)"),
    "citygml": ("citygml", lambda p: p, r"empty file \(0 bytes\)"),
    "ifc": ("ifc", lambda p: p, r"empty file \(0 bytes\)"),
}


@pytest.mark.parametrize("case", EMPTIES)
def test_empty_file_fails_naming_it(home: Path, write_contract, case: str) -> None:
    fmt, part, match = EMPTIES[case]
    _, table, write = FORMATS[fmt]
    source = write(home, "empty", 2)
    part(source).write_bytes(b"")
    fails_cleanly(source, _feed(fmt, write_contract), table, match)


@pytest.mark.parametrize("fmt", ["gpkg", "filegdb", "shapefile", "geojson"])
def test_zero_record_file_fails_and_never_clears_rows(home: Path, write_contract, fmt: str) -> None:
    """Decision (docs/lake-guarantees.md): a file with no records fails; taken as zero rows it would look like a
    success, and a re-delivered empty export would silently withdraw every row its source had landed."""
    _, table, write = FORMATS[fmt]
    feed = _feed(fmt, write_contract)
    source = write(home, "a", 2)
    ingest_source(source, get_contract(feed))
    _remove(source)
    assert write(home, "a", 0) == source  # the same source delivered again, now without records
    fails_cleanly(source, feed, table, r"no records in layer '\w+': nothing to ingest; deliver the file with its "
                                       r"features \(rows already in the lake stay as they are\)")
    assert landed(table, source) == (2, 0, 2)


# --- layers and geometry types ----------------------------------------------------------------------------------
def test_second_layer_is_never_picked_silently(home: Path, write_contract) -> None:
    path = write_parcels_gpkg(home / "landing/ogr/two.gpkg", {"DLTB": parcel_boxes(20), "DLTB_old": parcel_boxes(5)})
    unnamed = write_contract(OGR_PARCELS_CONTRACT.format(feed="unnamed", format="gpkg", extra=""))
    fails_cleanly(path, unnamed, "parcels", r"two\.gpkg: 2 layers \(DLTB, DLTB_old\) and feed contract unnamed names "
                                            r"none: add `layer:` to the contract")
    named = write_contract(OGR_PARCELS_CONTRACT.format(feed="named", format="gpkg", extra="layer: DLTB_old"))
    result = ingest_source(path, get_contract(named))
    assert result.rows_read == 5 and landed("parcels", path) == (5, 0, 5)
    assert set(delta_io.read_table(BRONZE["parcels"]).column("layer_name").to_pylist()) == {"DLTB_old"}


def test_mixed_geometry_types_quarantine_the_wrong_ones(home: Path, write_contract) -> None:
    wrong = [shapely.Point(106.5, 29.5), shapely.LineString([(106.5, 29.5), (106.51, 29.51)])]
    path = write_parcels_gpkg(home / "landing/ogr/mixed.gpkg", {"DLTB": parcel_boxes(10) + wrong})
    feed = write_contract(OGR_PARCELS_CONTRACT.format(feed="mixed", format="gpkg", extra="layer: DLTB"))
    result = ingest_source(path, get_contract(feed))
    assert (result.rows_read, result.rows_silver, result.rows_quarantined) == (12, 10, 2)
    assert landed("parcels", path) == (10, 2, 12)
    assert [(r["_row_number"], r["rule_id"], r["reason"]) for r in quarantined("parcels", path)] == [
        (11, "GEOM_TYPE", "geometry is Point; this table takes Polygon/MultiPolygon"),
        (12, "GEOM_TYPE", "geometry is LineString; this table takes Polygon/MultiPolygon")]
    assert np.all(shapely.get_type_id(shapely.from_wkb(
        delta_io.read_table(SILVER["parcels"]).column("geometry").to_pylist())) == 3)
