"""Services: ingest and answer.  They use adapters and return data models."""
