"""Routing: the strategy tree a request walks, retries, timeouts and the circuit breaker."""
