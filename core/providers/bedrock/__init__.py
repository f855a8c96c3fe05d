"""AWS Bedrock: OpenAI chat over Converse / ConverseStream and embeddings over InvokeModel, SigV4-signed with the
gateway's native AWS identity. :class:`~core.providers.bedrock.provider.BedrockProvider` is the entry point."""
