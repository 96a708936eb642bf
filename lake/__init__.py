"""The lake: table registry, Delta I/O, DuckDB access, CRS and area helpers, feed readers, demo region."""
