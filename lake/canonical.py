"""Map a delivery's attributes to a silver table's canonical columns by the feed contract's field rules.

Conversion problems are per row (the row goes to quarantine with rule FIELD_CAST), except a mapped field
that the file does not have at all, which fails the whole batch: the contract and the file disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lake.contracts import FeedContract, FieldRule
from lake.errors import FeedReadError
from lake.readers.raw_batch import RawBatch
from lake.registry import TableSpec


@dataclass
class Canonical:
    """Canonical columns plus, per row, the first conversion problem (None where there was none)."""

    columns: dict[str, pa.Array]
    problems: np.ndarray  # object array of str | None
    spatial_rules: dict[str, FieldRule] = field(default_factory=dict)


def canonicalize(batch: RawBatch, contract: FeedContract, spec: TableSpec) -> Canonical:
    n = batch.num_rows
    problems = np.full(n, None, dtype=object)
    columns: dict[str, pa.Array] = {}
    spatial: dict[str, FieldRule] = {}
    for column in spec.columns:
        rule = contract.fields.get(column.name)
        if rule is None:
            columns[column.name] = pa.nulls(n, column.type)
        elif rule.spatial:
            spatial[column.name] = rule
            columns[column.name] = pa.nulls(n, column.type)
        else:
            raw = _raw_values(batch, rule, n)
            columns[column.name] = _convert(raw, column, rule, problems)
    return Canonical(columns, problems, spatial)


def _raw_values(batch: RawBatch, rule: FieldRule, n: int) -> pa.Array:
    if rule.value is not None:
        return pa.array([rule.value] * n)
    if rule.field not in batch.attributes.column_names:
        raise FeedReadError(str(batch.source), f"field {rule.field!r} (mapped by the feed contract) is not in layer "
                                               f"{batch.layer!r}; fields: {', '.join(batch.attributes.column_names)}")
    return batch.attributes.column(rule.field).combine_chunks()


def _as_text(values: pa.Array) -> pa.Array:
    """Text form of delivered values; integral floats lose their '.0' (codes delivered as numbers)."""
    if pa.types.is_floating(values.type):
        finite = pc.fill_null(pc.is_finite(values), True)
        integral = pc.all(pc.or_(pc.invert(finite), pc.equal(pc.floor(values), values))).as_py()
        if integral is not False and pc.all(finite).as_py():
            values = pc.cast(values, pa.int64())
    return pc.cast(values, pa.string()) if not pa.types.is_string(values.type) else values


def _convert(raw: pa.Array, column: pa.Field, rule: FieldRule, problems: np.ndarray) -> pa.Array:
    values = raw
    if rule.slice is not None or rule.map is not None or pa.types.is_string(column.type):
        values = _as_text(values)
        values = pc.if_else(pc.equal(pc.utf8_trim_whitespace(values), ""), pa.scalar(None, pa.string()), values)
    if rule.slice is not None:
        values = pc.utf8_slice_codeunits(values, rule.slice[0], rule.slice[1])
    if rule.map is not None:
        values = _apply_map(values, rule, column.name, problems)
    if rule.default is not None:
        values = pc.fill_null(values, pa.scalar(rule.default).cast(values.type, safe=False))
    return _cast(values, column, problems)


def _apply_map(values: pa.Array, rule: FieldRule, name: str, problems: np.ndarray) -> pa.Array:
    mapping = {str(k): v for k, v in (rule.map or {}).items()}
    out = []
    for i, v in enumerate(values.to_pylist()):
        if v is None or v in mapping:
            out.append(None if v is None else mapping[v])
        else:
            out.append(None)
            _note(problems, i, f"{name}: value {v!r} of field {rule.field!r} is not in the contract's map "
                               f"({', '.join(mapping)})")
    return pa.array(out)


def _cast(values: pa.Array, column: pa.Field, problems: np.ndarray) -> pa.Array:
    try:
        return pc.cast(values, column.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    out = []
    for i, v in enumerate(values.to_pylist()):
        try:
            out.append(None if v is None else pa.scalar(v).cast(column.type).as_py())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            out.append(None)
            _note(problems, i, f"{column.name}: {v!r} is not a valid {column.type}")
    return pa.array(out, column.type)


def _note(problems: np.ndarray, i: int, message: str) -> None:
    if problems[i] is None:
        problems[i] = message
