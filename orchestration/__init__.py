"""Dagster wiring and the onemap CLI."""
