"""Grants and tokens (deny by default, hashed tokens, revocation) and the SQL guard's refusals, without a server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
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
    assert found is not None and found.token_id == token_id and found.department.name == "housing"
    assert store.authenticate(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert store.authenticate("not-a-token") is None
    grants.revoke_token(token_id)
    assert store.authenticate(token) is None


def test_a_token_belongs_to_its_department_identity_not_its_name(home: Path) -> None:
    first_id = grants.create_department("housing")
    token_id, token = grants.issue_token("housing")
    store = grants.TokenStore()
    assert store.authenticate(token).department.id == first_id
    assert store.session(token_id, first_id) is not None and store.session(token_id, "someone-else") is None
    assert grants.delete_department("housing") == 1
    assert store.authenticate(token) is None and store.session(token_id, first_id) is None
    second_id = grants.create_department("housing")  # same name: a stranger to the old token
    assert second_id != first_id
    assert store.authenticate(token) is None and store.session(token_id, second_id) is None
    assert grants.describe()[0]["tokens"] == []  # the old identity's tokens are not listed as the new one's
    with pytest.raises(OnemapError, match="no department 'nobody'"):
        grants.delete_department("nobody")


def test_expired_tokens_are_refused_and_durations_parse(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    grants.create_department("housing")
    token_id, token = grants.issue_token("housing", timedelta(hours=1))
    store = grants.TokenStore()
    found = store.authenticate(token)
    assert found.expires_at is not None and abs(found.expires_at - datetime.now(UTC) - timedelta(hours=1)) < \
        timedelta(seconds=5)
    later = datetime.now(UTC) + timedelta(hours=2)
    monkeypatch.setattr(grants, "_now", lambda: later)
    assert store.authenticate(token) is None and store.session(token_id, found.department.id) is None
    assert "expired" in grants.describe()[0]["tokens"][0]
    assert grants.duration("30d") == timedelta(days=30) and grants.duration("90m") == timedelta(minutes=90)
    assert grants.duration("2w") == timedelta(weeks=2) and grants.duration("12h") == timedelta(hours=12)
    for bad in ("30", "0d", "3y", "-1d", "1.5h"):
        with pytest.raises(OnemapError, match="duration"):
            grants.duration(bad)


def test_old_grants_files_are_migrated_without_reviving_anything(home: Path) -> None:
    """A file written before departments had ids: its live token keeps working, its revoked one and the token of a
    department that is gone stay dead, and the ids stay the same until the file is next written."""
    salt, secrets_ = "00" * 16, {name: name[0] * 43 for name in ("live", "revoked", "orphan")}
    old = {"departments": {"housing": {"description": "", "created_at": "2024-01-01T00:00:00+00:00", "grants": {
        "silver/parcels": {"columns": None, "districts": None}}}},
           "tokens": {f"{i:012x}": {"department": department, "salt": salt, "hash": grants._hash(salt, secrets_[name]),
                                    "created_at": "2024-01-01T00:00:00+00:00", "revoked_at": revoked}
                      for i, (name, department, revoked) in enumerate((
                          ("live", "housing", None), ("revoked", "housing", "2024-02-01T00:00:00+00:00"),
                          ("orphan", "gone", None)))}}
    grants.access_file().parent.mkdir(parents=True)
    grants.access_file().write_text(json.dumps(old))
    store = grants.TokenStore()
    token = {name: f"omt_{i:012x}_{secrets_[name]}" for i, name in enumerate(secrets_)}
    live = store.authenticate(token["live"])
    assert live is not None and live.department.name == "housing" and "silver/parcels" in live.department.grants
    assert store.authenticate(token["revoked"]) is None and store.authenticate(token["orphan"]) is None
    grants.create_department("gone")  # a new department of the orphan's old name does not adopt it
    assert store.authenticate(token["orphan"]) is None
    assert grants.load()["departments"]["housing"]["id"] == live.department.id  # written as migrated: same id
    assert store.authenticate(token["live"]).department.id == live.department.id
    grants.delete_department("housing")
    grants.create_department("housing")
    assert store.authenticate(token["live"]) is None and store.authenticate(token["revoked"]) is None


def test_a_revoke_right_after_another_write_is_seen(home: Path) -> None:
    """The store compares the file's bytes, not its timestamp (two writes can share a clock tick)."""
    grants.create_department("housing")
    store = grants.TokenStore()
    for _ in range(20):
        token_id, token = grants.issue_token("housing")
        assert store.authenticate(token) is not None
        grants.revoke_token(token_id)
        assert store.authenticate(token) is None


def test_the_governance_center_gets_every_twin_table_whole(home: Path) -> None:
    from twin_viewer.server.twin_grants import GOVERNANCE_CENTER, TWIN_TABLES, governance_center_token

    token = governance_center_token(timedelta(days=1))
    again = governance_center_token()  # idempotent: the same department, another token
    store = grants.TokenStore()
    first, second = store.authenticate(token), store.authenticate(again)
    assert first.department.name == GOVERNANCE_CENTER and first.department.id == second.department.id
    assert set(first.department.grants) == set(TWIN_TABLES)
    for grant in first.department.grants.values():
        assert grant.columns == tuple(grant.spec.schema.names) and grant.districts is None
    assert first.expires_at is not None and second.expires_at is None


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
