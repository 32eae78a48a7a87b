"""How long a consumer waits for one Firestore call before counting it as failed.

Without a deadline a server that stops answering (a hung connection, a frozen
emulator) holds a worker forever: it settles nothing, and ``/healthz`` fails
after 120 s although a retry would do. With these, the call fails as a
transient error and the runner retries the batch in process, holding its
messages (consumers/runner.py). A read's attempts (4 for the members
consumer), their pauses and the runner's backoff stay under those 120 s.
"""

from __future__ import annotations

READ_TIMEOUT = 15.0  # one batched read of up to 500 documents
COMMIT_TIMEOUT = 60.0  # one commit of up to 500 writes (the client library's default)
