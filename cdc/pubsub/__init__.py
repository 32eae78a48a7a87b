"""Pub/Sub: publisher, admin, subscription RPCs, pulling, deliveries, dead letters."""
