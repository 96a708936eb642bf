"""The HTTP server: department query API (OGC API – Features, STAC API, SQL) and, later, the viewer's pages."""
