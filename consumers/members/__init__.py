"""The Firestore member consumer: change events -> ``members/{kennitala}`` (docs/firestore.md)."""
