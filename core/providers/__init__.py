"""LLM provider adapters: one module (or package) per provider behind :class:`core.providers.base.Provider`."""
