"""Shared state across replicas (Redis), with the in-memory fallbacks each feature degrades to."""
