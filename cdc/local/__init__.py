"""The local stack: Postgres and the emulators on this machine."""
