"""Department access to the lake: grants and tokens (grants.py), per-department read-only catalogs (catalog.py),
SQL checking (sql_guard.py) and the audit trail (audit.py)."""
