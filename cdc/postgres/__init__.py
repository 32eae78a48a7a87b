"""Postgres: connections, error translation, pgoutput, replication, catalog, provisioning."""
