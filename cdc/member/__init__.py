"""The member model below both sides: kennitala, versions, parts, mapping, index layout."""
