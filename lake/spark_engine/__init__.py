"""The Spark engine of the one map: the overlay-heavy marts computed on Spark, partitioned by grid tile.

- `tiles`: which tiles a geometry's bbox touches, and the reference-point rule that computes each pair once;
- `geometry`: the vectorised shapely work on Arrow batches that runs inside executors (no per-row loop);
- `overlay`: the Spark plan — quadtree pieces of the control lines, tile cogroups, pair aggregation;
- `marts`: the marts in Spark SQL, mirroring transforms/models (same keys, rules, statuses);
- `build`: the engine entry point used by quality.wap (marts land in the build database the gates audit);
- `ingest`: survey deliveries to silver on Spark (reprojection, validation, ellipsoidal area per file task).
"""
