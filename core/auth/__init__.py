"""Gateway API keys: who may call the gateway, and which configs and virtual keys each caller may use."""
