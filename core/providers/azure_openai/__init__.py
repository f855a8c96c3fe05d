"""Azure OpenAI: request translation (endpoint), auth choice (auth), response and stream translation (response,
stream), error mapping (errors), and the provider that composes them (provider)."""

from core.providers.azure_openai.provider import AzureOpenAIProvider

__all__ = ["AzureOpenAIProvider"]
