"""The audit consumer: one Firestore record per change event (``cdc consume audit``)
and the query / retention side (``cdc audit``). See docs/audit.md."""
