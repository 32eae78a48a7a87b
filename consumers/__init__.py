"""Subscribers of the change-event topic: Firestore members, audit trail."""
