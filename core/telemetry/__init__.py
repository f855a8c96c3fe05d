"""Request logs (records, redaction, the pipeline and its sinks), metrics and costs."""
