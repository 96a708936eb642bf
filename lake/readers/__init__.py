"""Feed readers: turn a delivered file into a RawBatch (attributes as delivered, geometry, declared CRS)."""
