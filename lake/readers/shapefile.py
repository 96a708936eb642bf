"""Shapefiles, read part by part so that no record is lost when the parts disagree.

GDAL reads a shapefile as one layer as long as its .shx and silently stops at the shorter of the .shx and the .dbf
(a .dbf three records short ingested 47 of 50 rows), gives a null geometry for a shape cut off by a truncated .shp,
and its text recoding drops the bytes it cannot decode (warning once per process). It reports neither the .dbf's
own record count nor where the .shp ends, so those header fields are read here (the only hand parsing: the .shx
length and shape offsets, the .shp size, the .dbf record count and lengths). GDAL then reads the shapes and the
records separately (each part linked alone into a temporary folder), they are aligned by record number, and the
.dbf text, read undecoded (open option ENCODING=""), is decoded here strictly in the encoding the .cpg or the feed
contract declares: undecodable bytes fail the batch, naming the record and field.

Parts that disagree fail the batch, naming the counts, unless the contract says `on_partial_shapefile: quarantine`:
then records with both their shape and their .dbf record land, and every other record goes to quarantine (rule
SHAPEFILE_PARTIAL) by record number, with whatever part of it exists. Records the .dbf marks deleted are not records
(every shapefile reader skips them): they are neither landed nor quarantined.
"""

from __future__ import annotations

import codecs
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyogrio

from lake.errors import FeedReadError
from lake.readers.raw_batch import RawBatch
from lake.readers.vector import REDELIVER, require_records, split_geometry

if TYPE_CHECKING:
    from lake.contracts import FeedContract

PARTIAL = "SHAPEFILE_PARTIAL"
_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")


@dataclass(frozen=True)
class Layout:
    """What each part of a shapefile holds, from its headers."""

    shape_complete: np.ndarray  # per .shx entry: the shape lies wholly inside the .shp
    shapes_unindexed: int  # whole shapes in the .shp after the last one the .shx indexes
    records_declared: int  # the .dbf header's record count
    records_present: int  # whole records in the .dbf

    @property
    def shapes(self) -> int:
        return len(self.shape_complete) + self.shapes_unindexed

    @property
    def records(self) -> int:
        """Records any part counts: the rows of the batch."""
        return max(self.shapes, self.records_declared)

    def disagreements(self) -> list[str]:
        indexed, cut = len(self.shape_complete), int((~self.shape_complete).sum())
        found = []
        if self.shapes != self.records_declared:
            found.append(f"the .dbf has {self.records_declared} records but the .shp {self.shapes} shapes")
        if self.records_present < self.records_declared:
            found.append(f"the .dbf header counts {self.records_declared} records but the file holds only "
                         f"{self.records_present} (cut off)")
        if cut:
            found.append(f"the .shx indexes {indexed} shapes but {cut} of them lie beyond the end of the .shp "
                         "(cut off)")
        if self.shapes_unindexed:
            found.append(f"the .shp holds {self.shapes} shapes but its .shx indexes only {indexed}")
        return found

    def row_problems(self) -> np.ndarray:
        """Per record: None, or (SHAPEFILE_PARTIAL, what it lacks) naming its record number."""
        indexed, problems = len(self.shape_complete), np.full(self.records, None, dtype=object)
        whole = np.zeros(self.records, dtype=bool)
        whole[:min(indexed, self.records_present)] = self.shape_complete[:self.records_present]
        for i in np.flatnonzero(~whole):
            lacks = []
            if i >= self.shapes:
                lacks.append(f"no shape (the .shp has {self.shapes})")
            elif i >= indexed:
                lacks.append("its shape is not indexed by the .shx")
            elif not self.shape_complete[i]:
                lacks.append("its shape lies beyond the end of the .shp")
            if i >= self.records_declared:
                lacks.append(f"no .dbf record (the .dbf has {self.records_declared})")
            elif i >= self.records_present:
                lacks.append("its .dbf record lies beyond the end of the .dbf")
            if lacks:
                problems[i] = (PARTIAL, f"record {i + 1}: " + "; ".join(lacks))
        return problems


def read_shapefile(source: str, contract: FeedContract) -> RawBatch:
    shp = Path(source)
    parts = _parts(shp)
    layout = _layout(shp, parts)
    problems = layout.row_problems()
    incomplete = int(np.not_equal(problems, None).sum())
    if incomplete and contract.on_partial_shapefile == "fail":
        raise FeedReadError(shp, f"the shapefile's parts disagree: {'; '.join(layout.disagreements())}. "
                                 f"{incomplete} of its {layout.records} records are incomplete and would be lost: "
                                 f"re-export the shapefile whole, or set `on_partial_shapefile: quarantine` in feed "
                                 f"contract {contract.feed} to land the {layout.records - incomplete} complete "
                                 "records and quarantine the others by record number")
    codec, origin = _encoding(shp, parts, contract)
    shapes_meta, shapes, records_meta, records = _read_parts(shp, parts)

    geometry = np.full(layout.records, None, dtype=object)
    geometry[shapes.column(0).to_numpy()] = split_geometry(shapes.remove_column(0))[1]
    record_fids = records.column(0).to_numpy()
    whole = record_fids < layout.records_present  # GDAL may read a last record that is cut off
    record_fids = record_fids[whole]
    records = _decoded(shp, records.remove_column(0).filter(pa.array(whole)), records_meta, record_fids, codec,
                       origin)
    position = np.full(layout.records, -1)
    position[record_fids] = np.arange(len(record_fids))
    attributes = records.take(pa.array(position, mask=position < 0))

    live = np.ones(layout.records, dtype=bool)
    live[:layout.records_present] = False
    live[record_fids] = True  # records GDAL skipped are those the .dbf marks deleted
    batch = RawBatch(shp, shp.stem, attributes.filter(pa.array(live)), geometry[live], shapes_meta.get("crs"),
                     row_problems=problems[live] if incomplete else None)
    return require_records(batch)


def _parts(shp: Path) -> dict[str, Path]:
    """The delivered parts by lower-case suffix; a shapefile needs .shx, .dbf and .prj beside its .shp."""
    if not shp.is_file():
        raise FeedReadError(shp, "file not found")
    parts = {p.suffix.lower(): p for p in shp.parent.iterdir() if p.stem == shp.stem and p.suffix.lower() in _PARTS}
    for part in (".shx", ".dbf", ".prj"):
        if part not in parts:
            raise FeedReadError(shp, f"missing {part}: deliver all parts of the shapefile (.shp, .shx, .dbf, .prj and "
                                     "ideally .cpg)")
    return parts


def _layout(shp: Path, parts: dict[str, Path]) -> Layout:
    shx = parts[".shx"].read_bytes()
    declared = int.from_bytes(shx[24:28], "big") * 2 if len(shx) >= 28 else 0
    if len(shx) < 100 or declared != len(shx) or (len(shx) - 100) % 8:
        raise FeedReadError(shp, f"the .shx is cut off or damaged ({len(shx)} bytes, its header says {declared}), so "
                                 f"the shapes cannot be located; {REDELIVER}")
    offset_length = np.frombuffer(shx, ">i4", offset=100).reshape(-1, 2).astype(np.int64) * 2  # 16-bit words
    shp_size = shp.stat().st_size
    if shp_size < 100:
        raise FeedReadError(shp, f"the .shp is {shp_size} bytes, shorter than its 100-byte header; {REDELIVER}")
    ends = offset_length[:, 0] + 8 + offset_length[:, 1]
    unindexed = _unindexed_shapes(shp, int(ends.max(initial=100)), len(ends), shp_size)
    declared_records, present_records = _dbf_counts(shp, parts[".dbf"])
    return Layout(ends <= shp_size, unindexed, declared_records, present_records)


def _unindexed_shapes(shp: Path, position: int, indexed: int, size: int) -> int:
    """Whole shape records in the .shp after the last one the .shx indexes (a .shx cut short and repaired)."""
    count = 0
    with shp.open("rb") as f:
        while position + 8 <= size:
            f.seek(position)
            number, words = struct.unpack(">ii", f.read(8))
            end = position + 8 + 2 * words
            if number != indexed + count + 1 or words < 2 or end > size:
                break
            count, position = count + 1, end
    return count


def _dbf_counts(shp: Path, dbf: Path) -> tuple[int, int]:
    """(records the .dbf header counts, whole records the file holds)."""
    with dbf.open("rb") as f:
        header = f.read(12)
    if len(header) < 12:
        raise FeedReadError(shp, f"the .dbf is {len(header)} bytes, shorter than its header; {REDELIVER}")
    declared, header_length, record_length = struct.unpack("<IHH", header[4:12])
    size = dbf.stat().st_size
    if header_length < 33 or record_length < 1 or size < header_length:
        raise FeedReadError(shp, f"the .dbf header is cut off or damaged (file {size} bytes, header {header_length} "
                                 f"bytes, records {record_length} bytes); {REDELIVER}")
    return declared, min(declared, (size - header_length) // record_length)


def _encoding(shp: Path, parts: dict[str, Path], contract: FeedContract) -> tuple[str, str]:
    """(Python codec, where it was declared): the .cpg wins, then the contract's `encoding:`, else UTF-8."""
    cpg = parts[".cpg"].read_text(encoding="ascii", errors="replace").strip() if ".cpg" in parts else ""
    if cpg:
        codec, origin = _cpg_codec(cpg), f"its .cpg says {cpg!r}; correct the .cpg"
    elif contract.encoding:
        codec, origin = contract.encoding, (f"feed contract {contract.feed} says `encoding: {contract.encoding}`; "
                                            "correct it or deliver a .cpg")
    else:
        codec, origin = "UTF-8", (f"there is no .cpg and feed contract {contract.feed} declares no `encoding:` "
                                  "(Chinese shapefiles are often GBK); deliver a .cpg or declare `encoding:`")
    try:
        codecs.lookup(codec)
    except LookupError:
        raise FeedReadError(shp, f"unknown text encoding {codec!r}: {origin}, e.g. GBK, GB18030 or UTF-8") from None
    return codec, origin


def _cpg_codec(cpg: str) -> str:
    """A .cpg's code page as a codec name, as GDAL reads it: '936' and 'ANSI 936' → cp936, '65001' → UTF-8,
    '88591' → ISO-8859-1; names (GBK, UTF-8) as they are."""
    code = cpg.upper().removeprefix("ANSI").strip()
    if not code.isdigit():
        return cpg
    if code == "65001":
        return "UTF-8"
    return f"ISO-8859-{code[4:]}" if code.startswith("8859") and len(code) > 4 else f"cp{code}"


def _read_parts(shp: Path, parts: dict[str, Path]) -> tuple[dict, pa.Table, dict, pa.Table]:
    """GDAL reads of the shapes alone and of the records alone (text undecoded), each with its record ids."""
    with tempfile.TemporaryDirectory(prefix="onemap-shapefile-") as tmp:
        folder = Path(tmp)
        for suffix in (".shp", ".shx", ".prj"):
            (folder / f"shapes{suffix}").symlink_to(parts[suffix].resolve())
        (folder / "records.dbf").symlink_to(parts[".dbf"].resolve())
        try:
            shapes_meta, shapes = pyogrio.read_arrow(folder / "shapes.shp", return_fids=True)
            records_meta, records = pyogrio.read_arrow(folder / "records.dbf", return_fids=True, ENCODING="")
            records = records.rename_columns(list(map(str, range(records.num_columns))))  # names undecoded too
        except Exception as exc:  # GDAL raises several types for unreadable files
            reason = str(exc).replace(str(folder / "shapes"), str(shp.with_suffix(""))).replace(
                str(folder / "records.dbf"), str(parts[".dbf"]))
            raise FeedReadError(shp, f"not readable as a Shapefile: {reason}; {REDELIVER}") from exc
    return shapes_meta, shapes, records_meta, records


def _decoded(shp: Path, records: pa.Table, meta: dict, record_fids: np.ndarray, codec: str, origin: str) -> pa.Table:
    """Field names and text of the .dbf decoded strictly: bytes that are not `codec` fail, never turn into '?'."""
    raw_names = [name.encode(meta.get("encoding") or "ISO-8859-1") for name in meta["fields"]]
    try:
        names = [name.decode(codec) for name in raw_names]
    except UnicodeDecodeError as exc:
        raise FeedReadError(shp, f"the .dbf field names are not valid {codec} ({exc}): {origin}") from exc
    columns, affected, first = [], np.zeros(records.num_rows, dtype=bool), None
    for name, column in zip(names, records.columns, strict=True):
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            columns.append(column)
            continue
        text, bad, sample = _decode_column(column.combine_chunks(), codec)
        columns.append(text)
        if bad.any():
            first = first or (record_fids[np.argmax(bad)] + 1, name, sample)
            affected |= bad
    if first is not None:
        record, name, sample = first
        raise FeedReadError(shp, f"the .dbf text is not valid {codec}: record {record}, field {name} has bytes "
                                 f"{sample} that do not decode ({int(affected.sum())} records affected); {origin}")
    return pa.table(columns, names=names)


def _decode_column(values: pa.Array, codec: str) -> tuple[pa.Array, np.ndarray, str]:
    """(decoded text, rows that do not decode, hex of the first bytes that do not). Each distinct value is decoded
    once: codes and class names repeat; ASCII-only columns (ids, codes) are taken as they are."""
    if pc.all(pc.string_is_ascii(values)).as_py() is not False:
        return values, np.zeros(len(values), dtype=bool), ""
    raw = values.view(pa.large_binary() if pa.types.is_large_string(values.type) else pa.binary())
    uniques = pc.unique(raw)
    texts, bad, sample = [], [], ""
    for value in uniques.to_pylist():
        try:
            texts.append(None if value is None else value.decode(codec))
        except UnicodeDecodeError as exc:
            texts.append(None)
            bad.append(value)
            sample = sample or value[max(0, exc.start - 4):exc.start + 8].hex(" ")
    decoded = pc.take(pa.array(texts, pa.string()), pc.index_in(raw, value_set=uniques))
    mask = pc.is_in(raw, value_set=pa.array(bad, raw.type)).to_numpy(zero_copy_only=False)
    return decoded, mask, sample
