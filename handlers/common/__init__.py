"""What every cloud entry shares: environment defaults, the per-process serverless gateway, container serving."""
