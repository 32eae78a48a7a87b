"""Postgres change-data-capture for the membership register.

pgoutput logical replication -> change events on Pub/Sub -> Firestore documents.
"""

__version__ = "0.1.0"
