"""Marks on answers that become golden rows: the store, the service, the export."""
