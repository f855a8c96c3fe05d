"""Wire formats the gateway accepts and emits: OpenAI request bodies and server-sent events."""
