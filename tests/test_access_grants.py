"""Grants and tokens (deny by default, hashed tokens, revocation) and the SQL guard's refusals, without a server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lake.access import grants
from lake.access.sql_guard import SqlRefused, check_sql
from lake.errors import OnemapError

VIEWS = {"parcels": ("parcel_id", "district_code", "land_class_code", "area_m2", "geometry")}


def test_tokens_are_stored_hashed_and_revocation_takes_effect(home: Path) -> None:
    grants.create_department("housing")
    token_id, token = grants.issue_token("housing")
    text = grants.access_file().read_text()
    assert token.split("_", 2)[2] not in text and token not in text
    store = grants.TokenStore()
    found = store.authenticate(token)
    assert found is not None and found[0] == token_id and found[1].name == "housing"
    assert store.authenticate(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert store.authenticate("not-a-token") is None
    grants.revoke_token(token_id)
    assert store.authenticate(token) is None


def test_grants_deny_by_default_and_resolve_columns(home: Path) -> None:
    grants.create_department("agriculture")
    store_department = grants.department(grants.load(), "agriculture")
    assert store_department.grants == {}
    grants.grant("agriculture", "parcels", columns=["parcel_id", "geometry"], districts=["500112"])
    grant = grants.department(grants.load(), "agriculture").grants["silver/parcels"]
    assert grant.columns == ("parcel_id", "geometry", "bbox_xmin", "bbox_ymin", "bbox_xmax", "bbox_ymax")
    assert grant.districts == ("500112",)
    grants.revoke("agriculture", "silver/parcels")
    assert grants.department(grants.load(), "agriculture").grants == {}
    assert json.loads(grants.access_file().read_text())["departments"]["agriculture"]["grants"] == {}


@pytest.mark.parametrize(("call", "message"), [
    (lambda: grants.grant("agriculture", "silver/nope"), "unknown table"),
    (lambda: grants.grant("agriculture", "parcels", columns=["secret"]), "has no column secret"),
    (lambda: grants.grant("agriculture", "stac_items", districts=["500112"]), "has no district_code"),
    (lambda: grants.grant("agriculture", "parcels", districts=["5001"]), "6 digits"),
    (lambda: grants.grant("nobody", "parcels"), "no department 'nobody'"),
    (lambda: grants.create_department("Bad Name"), "lower-case"),
])
def test_grant_mistakes_say_what_to_do(home: Path, call, message: str) -> None:
    grants.create_department("agriculture")
    with pytest.raises(OnemapError, match=message):
        call()


@pytest.mark.parametrize(("sql", "status", "reason"), [
    ("select 1; select 2", 400, "stacked"),
    ("select * from parcels; drop table parcels", 400, "stacked"),
    ("COPY (select * from parcels) TO '/tmp/out.csv'", 400, "only SELECT"),
    ("ATTACH '/tmp/other.db' AS other", 400, "only SELECT"),
    ("INSTALL httpfs", 400, "only SELECT"),
    ("LOAD httpfs", 400, "only SELECT"),
    ("PRAGMA database_list", 400, "only SELECT"),
    ("SET enable_external_access = true", 400, "only SELECT"),
    ("insert into parcels select * from parcels", 400, "only SELECT"),
    ("create table x as select * from parcels", 400, "only SELECT"),
    ("select * from read_text('/etc/passwd')", 400, "table functions"),
    ("select read_text('/etc/passwd')", 400, "read_text"),
    ("select * from delta_scan('/etc')", 400, "table functions"),
    ("select * from parquet_scan('/x.parquet')", 400, "table functions"),
    ("select * from glob('/*')", 400, "table functions"),
    ("select * from '/etc/passwd'", 403, "not granted"),
    ("select getenv('HOME')", 400, "getenv"),
    ("select current_setting('memory_limit')", 400, "current_setting"),
    ("select * from buildings", 403, "not granted"),
    ("select * from main.parcels", 403, "not granted"),
    ("select secret_column from parcels", 403, "not granted"),
    ("select * from parcels where 1=1 /*", 400, "parse"),
])
def test_sql_guard_refuses(sql: str, status: int, reason: str) -> None:
    with pytest.raises(SqlRefused, match=reason) as refused:
        check_sql(sql, VIEWS, 100)
    assert refused.value.status == status


def test_missing_and_ungranted_tables_get_the_same_message() -> None:
    messages = []
    for table in ("buildings", "no_such_table"):
        with pytest.raises(SqlRefused) as refused:
            check_sql(f"select * from {table}", VIEWS, 10)
        messages.append(str(refused.value).replace(table, "X"))
    assert messages[0] == messages[1]


def test_sql_guard_allows_analysis_and_caps_rows() -> None:
    sql = ("with big as (select district_code d, sum(area_m2) a from parcels group by 1) "
           "select d, round(a / 1e6, 2) km2, st_area(st_geomfromwkb(p.geometry)) from big join parcels p "
           "on p.district_code = big.d where p.land_class_code like '01%' order by km2 desc limit 1000000")
    checked = check_sql(sql, VIEWS, 100)
    assert checked.endswith("LIMIT 101")
