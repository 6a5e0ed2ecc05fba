"""Ingest jobs of the HTTP API: their records, the manager that runs them, and the table that
shares them between API workers."""
