"""Status of the pipeline: the source, the sinks, and the rules that judge them."""
