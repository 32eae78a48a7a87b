"""What a process tells its operator: logs, redaction, metrics' HTTP server, health."""
