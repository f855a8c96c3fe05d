"""Response cache: canonical keys, memory and Redis backends, and replay of cached answers (streams as SSE)."""
