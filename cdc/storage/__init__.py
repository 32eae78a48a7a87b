"""Cloud Storage: whole objects read and written under generation preconditions."""
