"""GCP Vertex AI: Gemini (generateContent), Claude (rawPredict) and text embeddings (predict) with GCP identity.

``provider.py`` owns the endpoint (project, region, publisher), the credential and error mapping; each publisher's
translation lives in its own modules (``gemini_*``, ``claude.py`` over the shared ``anthropic_messages``,
``embeddings.py``), and ``schema.py`` reduces JSON Schema to what Gemini accepts.
"""
