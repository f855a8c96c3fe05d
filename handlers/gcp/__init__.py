"""GCP entries: Cloud Run functions (functions-framework, ASGI, streaming) and the Cloud Run / GKE container."""
