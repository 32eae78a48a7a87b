"""pgoutput (logical replication protocol version 1): bytes in, typed messages out.

Pure: nothing in this package does I/O. ``decode`` turns one message into a
typed value from ``messages``; ``values`` turns text-format column values into
JSON types by type OID.
"""
