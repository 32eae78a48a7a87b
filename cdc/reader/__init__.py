"""The always-on reader (`cdc run`): replication stream -> events -> Pub/Sub."""
