"""Credential sources: each authorizes one outgoing provider request (SigV4, Google OAuth, Entra, api keys)."""
