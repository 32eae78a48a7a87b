"""Streaming replication: COPY-both framing and the client that drives it."""
