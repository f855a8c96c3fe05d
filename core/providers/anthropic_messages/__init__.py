"""OpenAI chat ↔ Anthropic Messages: the single translation shared by every host of Claude.

The direct Anthropic API, Claude on Vertex (rawPredict) and Claude on Bedrock (InvokeModel) all speak the Messages
format; they differ only in where the model goes, the ``anthropic_version`` value, whether ``stream`` is in the body,
and the URL. Those are the callers' parameters — nothing vendor-specific lives in this package.

- :func:`~core.providers.anthropic_messages.request.chat_to_messages` — OpenAI chat body → Messages body.
- :func:`~core.providers.anthropic_messages.response.messages_to_chat` — Messages response → ``chat.completion``.
- :class:`~core.providers.anthropic_messages.stream.MessagesStreamTranslator` — Messages stream events →
  ``chat.completion.chunk`` (event by event, for SSE or Bedrock's event-stream frames alike), and
  :func:`~core.providers.anthropic_messages.stream.translate_messages_stream` for an SSE byte stream.
"""
