"""AWS entries: Lambda (buffered through Mangum, streaming through our Runtime API loop) and the EKS container."""
