"""``cdc dashboard``: one read-only web page of the pipeline's state (docs/dashboard.md).

targets (the processes' /metrics), rates (events/s, the chart's hour),
records (audit records without personal data), sources (Postgres and Google),
collector (the background reads), access (the token), server (HTTP), static/
(the page and the vendored chart library).
"""
