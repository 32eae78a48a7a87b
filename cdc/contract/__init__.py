"""The published contract: change events, their validation and JSON Schema."""
