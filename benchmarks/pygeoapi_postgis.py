"""A pygeoapi feature provider over PostGIS through psycopg 3, for the OGC API benchmark.

pygeoapi's own PostgreSQL provider needs geoalchemy2 and psycopg2, which are not in requirements.lock. This one
does what that provider does per request — count the matches, select the page with ST_Intersects on a GiST-indexed
geometry, turn WKB into GeoJSON through shapely — without the ORM layer, so it is, if anything, faster than stock.
"""

from __future__ import annotations

import psycopg
import shapely
from pygeoapi.provider.base import BaseProvider, ProviderItemNotFoundError

PROPERTIES = ("survey_year", "district_code", "land_class_code", "area_m2")


class PostGISProvider(BaseProvider):
    def __init__(self, provider_def: dict) -> None:
        super().__init__(provider_def)
        self.table = provider_def["table"]
        self.geom = provider_def.get("geom_field", "geometry")
        self._con = psycopg.connect(self.data["dsn"], autocommit=True)
        self.get_fields()

    def get_fields(self) -> dict:
        if not self._fields:
            self._fields = {"survey_year": {"type": "integer"}, "district_code": {"type": "string"},
                            "land_class_code": {"type": "string"}, "area_m2": {"type": "number"}}
        return self._fields

    def _feature(self, row: tuple) -> dict:
        geometry = shapely.geometry.mapping(shapely.from_wkb(row[-1])) if row[-1] is not None else None
        return {"type": "Feature", "id": row[0], "properties": dict(zip(PROPERTIES, row[1:-1])), "geometry": geometry}

    def query(self, offset: int = 0, limit: int = 10, resulttype: str = "results", bbox: list | None = None,
              **kwargs) -> dict:
        where, params = "", []
        if bbox:
            where = f" WHERE ST_Intersects(ST_MakeEnvelope(%s, %s, %s, %s, 4490), {self.geom})"
            params = list(bbox[:4])
        with self._con.cursor() as cur:
            matched = cur.execute(f"SELECT count(*) FROM {self.table}{where}", params).fetchone()[0]
            response = {"type": "FeatureCollection", "features": [], "numberMatched": matched, "numberReturned": 0}
            if resulttype == "hits":
                return response
            rows = cur.execute(f"SELECT {self.id_field}, {', '.join(PROPERTIES)}, ST_AsBinary({self.geom}) "
                               f"FROM {self.table}{where} OFFSET %s LIMIT %s", [*params, offset, limit]).fetchall()
        response["features"] = [self._feature(r) for r in rows]
        response["numberReturned"] = len(rows)
        return response

    def get(self, identifier: str, **kwargs) -> dict:
        with self._con.cursor() as cur:
            row = cur.execute(f"SELECT {self.id_field}, {', '.join(PROPERTIES)}, ST_AsBinary({self.geom}) "
                              f"FROM {self.table} WHERE {self.id_field} = %s", [identifier]).fetchone()
        if row is None:
            raise ProviderItemNotFoundError(f"no feature {identifier}")
        return self._feature(row)
