"""Firestore: raw document RPCs and the encoding of documents."""
