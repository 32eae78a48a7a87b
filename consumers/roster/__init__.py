"""`cdc consume roster` and `cdc roster`: the voting roster in Cloud Storage (docs/roster.md)."""
