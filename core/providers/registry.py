"""Maps provider ids to adapters, importing each adapter module only when first used (cold start)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import InvalidRequestError
from core.providers.base import Provider
from core.security.ssrf import SsrfGuard
from core.settings import Settings
from core.transport.base import UpstreamClient


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """Where an adapter lives and the keyword arguments it is built with (e.g. a compatible host's base URL)."""

    module: str
    cls: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProviderDeps:
    """What every adapter may use: the shared upstream client, the SSRF guard and the settings."""

    upstream: UpstreamClient
    guard: SsrfGuard
    settings: Settings


def _openai_compatible(base_url: str) -> ProviderSpec:
    return ProviderSpec("core.providers.openai", "OpenAIProvider", {"base_url": base_url})


#: Providers served today. OpenAI-compatible vendors share the OpenAI adapter with their own base URL.
DEFAULT_PROVIDERS: dict[str, ProviderSpec] = {
    "openai": _openai_compatible("https://api.openai.com/v1"),
    "groq": _openai_compatible("https://api.groq.com/openai/v1"),
    "together-ai": _openai_compatible("https://api.together.xyz/v1"),
    "mistral-ai": _openai_compatible("https://api.mistral.ai/v1"),
    "deepseek": _openai_compatible("https://api.deepseek.com"),
    "fireworks-ai": _openai_compatible("https://api.fireworks.ai/inference/v1"),
    "openrouter": _openai_compatible("https://openrouter.ai/api/v1"),
    "perplexity-ai": _openai_compatible("https://api.perplexity.ai"),
    "x-ai": _openai_compatible("https://api.x.ai/v1"),
    "anthropic": ProviderSpec("core.providers.anthropic", "AnthropicProvider"),
    "bedrock": ProviderSpec("core.providers.bedrock.provider", "BedrockProvider"),
    "vertex-ai": ProviderSpec("core.providers.vertex.provider", "VertexProvider"),
    "azure-openai": ProviderSpec("core.providers.azure_openai", "AzureOpenAIProvider"),
}


class UnknownProviderError(InvalidRequestError):
    default_code = "invalid_provider"

    def __init__(self, provider: str) -> None:
        super().__init__(
            f"Invalid provider passed: {provider!r} is not one of {', '.join(sorted(DEFAULT_PROVIDERS))}",
            param="x-portkey-provider",
        )


class ProviderRegistry:
    def __init__(self, deps: ProviderDeps, specs: Mapping[str, ProviderSpec] | None = None) -> None:
        self._deps = deps
        self._specs = dict(DEFAULT_PROVIDERS if specs is None else specs)
        self._built: dict[str, Provider] = {}

    def known(self, provider_id: str) -> bool:
        return provider_id in self._specs

    def ids(self) -> list[str]:
        return sorted(self._specs)

    def get(self, provider_id: str) -> Provider:
        provider = self._built.get(provider_id)
        if provider is not None:
            return provider
        spec = self._specs.get(provider_id)
        if spec is None:
            raise UnknownProviderError(provider_id)
        cls = getattr(importlib.import_module(spec.module), spec.cls)
        provider = cls(provider_id=provider_id, deps=self._deps, **spec.kwargs)
        self._built[provider_id] = provider
        return provider

    async def aclose(self) -> None:
        """Release what built adapters hold beyond the shared client (e.g. an identity pool's session)."""
        for provider in self._built.values():
            close = getattr(provider, "aclose", None)
            if close is not None:
                await close()
