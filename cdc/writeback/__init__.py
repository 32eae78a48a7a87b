"""``cdc writeback``: members' own edits from the portal, applied to Postgres with no echo.

request (pure: the request and its validation), conflict (pure: the conflict
rule and the writes), transaction (one Postgres transaction per request, tagged
with the replication origin), requests_store (Firestore: the requests, their
outcome, the member document), outcomes (writes them, many per commit),
runner (the process). docs/writeback.md.
"""
