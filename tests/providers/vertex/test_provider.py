"""The vertex-ai provider against a fake Vertex and fake Google OAuth on loopback: endpoints, identity choice, token
reuse and refresh, error mapping, streams."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from core.errors import InvalidRequestError, UnsupportedOperationError
from core.providers.base import Operation, ProviderResult
from core.providers.vertex.errors import VertexStreamError
from core.providers.vertex.provider import VertexProvider, split_model
from tests.fakes.gcp_identity import FakeGoogleOAuth, IssuedTokens
from tests.fakes.vertex_upstream import FakeVertex, Scripted, claude_stream_events, google_error
from tests.providers.vertex.conftest import RequestFactory

CHAT = {"model": "gemini-2.0-flash", "messages": [{"role": "user", "content": "Hi"}]}
CLAUDE = {"model": "anthropic.claude-sonnet-4@20250514", "messages": [{"role": "user", "content": "Hi"}]}


def _json(result: ProviderResult) -> Any:
    assert result.body is not None
    return orjson.loads(result.body)


async def _drain(result: ProviderResult) -> list[bytes]:
    assert result.chunks is not None
    try:
        return [chunk async for chunk in result.chunks]
    finally:
        await result.aclose()


# --- endpoint ----------------------------------------------------------------------------------------------------
async def test_gemini_call_uses_project_region_model_and_the_keys_token(
    provider: VertexProvider, make_request: RequestFactory, fake_vertex: FakeVertex, service_account: dict[str, Any],
    issued_tokens: IssuedTokens,
) -> None:
    request = make_request(CHAT, vertex_region="europe-west4", vertex_project_id="explicit-project",
                           vertex_service_account_json=orjson.dumps(service_account).decode())
    result = await provider.chat(request)

    assert result.status == 200, result.body
    assert _json(result)["choices"][0]["message"]["content"] == "Hello from fake Gemini."
    sent = fake_vertex.received[-1]
    assert sent.path == ("/v1/projects/explicit-project/locations/europe-west4/publishers/google/models/"
                         "gemini-2.0-flash:generateContent")
    assert sent.headers["authorization"].startswith("Bearer ya29.fake-sa-")
    assert sent.headers["authorization"].removeprefix("Bearer ") in issued_tokens
    assert sent.headers["content-type"] == "application/json"
    assert fake_vertex.rejected == []


async def test_project_comes_from_the_key_when_not_configured(
    provider: VertexProvider, make_request: RequestFactory, fake_vertex: FakeVertex, service_account: dict[str, Any],
) -> None:
    await provider.chat(make_request(CHAT, vertex_service_account_json=service_account))

    assert fake_vertex.received[-1].path.startswith("/v1/projects/key-project/locations/us-central1/")


@pytest.mark.parametrize(("model", "publisher", "model_id"), [
    ("gemini-2.5-pro", "google", "gemini-2.5-pro"),
    ("google.gemini-2.0-flash", "google", "gemini-2.0-flash"),
    ("anthropic.claude-3-5-sonnet-v2@20241022", "anthropic", "claude-3-5-sonnet-v2@20241022"),
    ("claude-opus-4@20250514", "anthropic", "claude-opus-4@20250514"),
    ("meta.llama-3.1-405b-instruct-maas", "meta", "llama-3.1-405b-instruct-maas"),
    ("my.dotted-model", "google", "my.dotted-model"),
])
def test_publisher_comes_from_the_model_prefix(model: str, publisher: str, model_id: str) -> None:
    assert split_model(model) == (publisher, model_id)


async def test_unsupported_publishers_are_a_clear_400(provider: VertexProvider, make_request: RequestFactory) -> None:
    with pytest.raises(UnsupportedOperationError, match="meta publisher"):
        await provider.chat(make_request({**CHAT, "model": "meta.llama-3.1-8b"}, api_key="ya29.t",
                                         vertex_project_id="p"))


async def test_forward_headers_pass_and_never_replace_the_credential(
    provider: VertexProvider, make_request: RequestFactory, fake_vertex: FakeVertex, issued_tokens: IssuedTokens,
) -> None:
    issued_tokens.add("ya29.forwarding-test")
    request = make_request(CHAT, api_key="ya29.forwarding-test", vertex_project_id="p",
                           forward_headers=("x-tenant", "authorization"),
                           headers={"x-tenant": "blue", "authorization": "Bearer client-value"})
    assert (await provider.chat(request)).status == 200

    sent = fake_vertex.received[-1].headers
    assert sent["x-tenant"] == "blue"
    assert sent["authorization"] == "Bearer ya29.forwarding-test"


# --- caller keys -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "message"), [
    ("{not json", "not valid JSON"),
    ('{"type": "external_account", "token_url": "http://127.0.0.1/x"}', "type service_account"),
    ('{"type": "authorized_user", "refresh_token": "r"}', "type service_account"),
    ('{"type": "service_account", "client_email": "a@b"}', "lacks private_key"),
])
async def test_caller_keys_must_be_service_account_keys(
    provider: VertexProvider, make_request: RequestFactory, value: str, message: str,
) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        await provider.chat(make_request(CHAT, vertex_service_account_json=value))


async def test_a_broken_private_key_is_refused_without_echoing_it(
    provider: VertexProvider, make_request: RequestFactory, service_account: dict[str, Any],
) -> None:
    broken = {**service_account, "private_key": "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n"
                                                "-----END PRIVATE KEY-----\n"}
    with pytest.raises(InvalidRequestError) as caught:
        await provider.chat(make_request(CHAT, vertex_service_account_json=broken))
    assert "c2VjcmV0" not in str(caught.value.body())


@pytest.mark.parametrize("token_uri", ["http://169.254.169.254/computeMetadata/v1/token", "http://10.1.2.3/token",
                                        "http://metadata.google.internal/token"])
async def test_a_caller_keys_token_uri_gets_the_ssrf_checks(
    provider: VertexProvider, make_request: RequestFactory, service_account: dict[str, Any], token_uri: str,
) -> None:
    with pytest.raises(InvalidRequestError, match="token_uri refused"):
        await provider.chat(make_request(CHAT, vertex_service_account_json={**service_account, "token_uri": token_uri}))


# --- tokens ------------------------------------------------------------------------------------------------------
async def test_one_token_serves_many_calls(
    provider: VertexProvider, make_request: RequestFactory, google_oauth: FakeGoogleOAuth,
    service_account: dict[str, Any],
) -> None:
    before = google_oauth.jwt_grants
    for _ in range(5):
        # a fresh copy of the key each time, as a header would deliver it
        key = orjson.dumps(service_account).decode()
        assert (await provider.chat(make_request(CHAT, vertex_service_account_json=key))).status == 200
    assert google_oauth.jwt_grants - before == 1


async def test_a_rejected_token_is_refreshed_once(
    provider: VertexProvider, make_request: RequestFactory, fake_vertex: FakeVertex, google_oauth: FakeGoogleOAuth,
    service_account: dict[str, Any], issued_tokens: IssuedTokens,
) -> None:
    request = make_request(CHAT, vertex_service_account_json=service_account)
    await provider.chat(request)
    first = fake_vertex.received[-1].headers["authorization"].removeprefix("Bearer ")
    issued_tokens.revoke(first)
    grants = google_oauth.jwt_grants

    result = await provider.chat(request)

    assert result.status == 200
    assert google_oauth.jwt_grants == grants + 1
    assert fake_vertex.received[-2].headers["authorization"] == f"Bearer {first}"
    assert fake_vertex.received[-1].headers["authorization"] != f"Bearer {first}"


async def test_a_callers_own_rejected_token_is_not_retried(
    provider: VertexProvider, make_request: RequestFactory, fake_vertex: FakeVertex,
) -> None:
    result = await provider.chat(make_request(CHAT, api_key="ya29.unknown", vertex_project_id="p"))

    assert result.status == 401
    assert len(fake_vertex.received) == 1
    assert _json(result)["error"]["type"] == "UNAUTHENTICATED"


# --- errors ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("http", "status_name", "expected"), [
    (429, "RESOURCE_EXHAUSTED", 429),
    (503, "UNAVAILABLE", 503),
    (400, "INVALID_ARGUMENT", 400),
    (403, "PERMISSION_DENIED", 403),
    (401, "UNAUTHENTICATED", 401),
    (404, "NOT_FOUND", 404),
    (400, "FAILED_PRECONDITION", 400),
    (504, "DEADLINE_EXCEEDED", 504),
    (500, "RESOURCE_EXHAUSTED", 429),  # the canonical status decides, whatever the status line said
])
async def test_google_errors_keep_their_meaning(
    provider: VertexProvider, make_request: RequestFactory, fake_vertex: FakeVertex, issued_tokens: IssuedTokens,
    http: int, status_name: str, expected: int,
) -> None:
    issued_tokens.add("ya29.errors")
    fake_vertex.enqueue(Scripted(status=http, body=google_error(http, status_name, "Quota exceeded for aiplatform"),
                                 headers={"retry-after": "7"}))
    result = await provider.chat(make_request(CHAT, api_key="ya29.errors", vertex_project_id="p"))

    assert result.status == expected
    assert _json(result) == {"error": {"message": "vertex-ai error: Quota exceeded for aiplatform",
                                       "type": status_name, "param": None, "code": str(http)},
                             "provider": "vertex-ai"}
    assert result.header("retry-after") == "7"


async def test_the_list_form_of_a_google_error_is_understood(
    provider: VertexProvider, make_request: RequestFactory, fake_vertex: FakeVertex, issued_tokens: IssuedTokens,
) -> None:
    issued_tokens.add("ya29.errors")
    fake_vertex.enqueue(Scripted(status=429, body=[google_error(429, "RESOURCE_EXHAUSTED", "slow down")]))
    result = await provider.chat(make_request({**CHAT, "stream": True}, api_key="ya29.errors",
                                              vertex_project_id="p"))

    assert result.status == 429
    assert _json(result)["error"]["message"] == "vertex-ai error: slow down"


async def test_claude_errors_in_anthropic_shape(
    provider: VertexProvider, make_request: RequestFactory, fake_vertex: FakeVertex, issued_tokens: IssuedTokens,
) -> None:
    issued_tokens.add("ya29.errors")
    fake_vertex.enqueue(Scripted(status=529, body={"type": "error", "error": {"type": "overloaded_error",
                                                                               "message": "Overloaded"}}))
    result = await provider.chat(make_request(CLAUDE, api_key="ya29.errors", vertex_project_id="p"))

    assert result.status == 529
    body = _json(result)
    assert body["error"]["message"] == "vertex-ai error: Overloaded"
    assert body["error"]["type"] == "overloaded_error"
    assert body["provider"] == "vertex-ai"


# --- streams and the other operations ------------------------------------------------------------------------------
async def test_gemini_stream_is_sse_ending_with_done(
    provider: VertexProvider, make_request: RequestFactory, fake_vertex: FakeVertex,
    service_account: dict[str, Any],
) -> None:
    result = await provider.chat(make_request({**CHAT, "stream": True}, vertex_service_account_json=service_account))

    assert result.media_type == "text/event-stream"
    chunks = await _drain(result)
    assert chunks[-1] == b"data: [DONE]\n\n"
    assert fake_vertex.received[-1].method == "streamGenerateContent"
    assert fake_vertex.received[-1].query == "alt=sse"


async def test_an_error_inside_a_gemini_stream_is_raised(
    provider: VertexProvider, make_request: RequestFactory, fake_vertex: FakeVertex,
    service_account: dict[str, Any],
) -> None:
    fake_vertex.enqueue(Scripted(events=[
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Part"}]}}]},
        google_error(503, "UNAVAILABLE", "The service is currently unavailable."),
    ]))
    result = await provider.chat(make_request({**CHAT, "stream": True}, vertex_service_account_json=service_account))

    with pytest.raises(VertexStreamError) as caught:
        await _drain(result)
    assert caught.value.body()["error"]["type"] == "UNAVAILABLE"
    assert caught.value.status == 503


async def test_claude_stream_goes_to_stream_raw_predict(
    provider: VertexProvider, make_request: RequestFactory, fake_vertex: FakeVertex,
    service_account: dict[str, Any],
) -> None:
    fake_vertex.enqueue(Scripted(events=claude_stream_events("claude-sonnet-4", ["Bon", "jour"])))
    result = await provider.chat(make_request({**CLAUDE, "stream": True}, vertex_service_account_json=service_account,
                                              anthropic_beta="token-efficient-tools-2025-02-19"))
    chunks = await _drain(result)

    sent = fake_vertex.received[-1]
    assert (sent.publisher, sent.model, sent.method) == ("anthropic", "claude-sonnet-4@20250514", "streamRawPredict")
    assert sent.body["anthropic_version"] == "vertex-2023-10-16" and sent.body["stream"] is True
    assert "model" not in sent.body
    assert sent.body["anthropic_beta"] == ["token-efficient-tools-2025-02-19"]
    text = "".join(orjson.loads(c[6:])["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
    assert text == "Bonjour"
    assert fake_vertex.rejected == []


async def test_embeddings_use_predict(
    provider: VertexProvider, make_request: RequestFactory, fake_vertex: FakeVertex,
    service_account: dict[str, Any],
) -> None:
    body = {"model": "text-embedding-005", "input": ["one two", "three"], "dimensions": 2,
            "task_type": "RETRIEVAL_QUERY"}
    result = await provider.embed(make_request(body, operation=Operation.EMBEDDING,
                                               vertex_service_account_json=service_account))

    assert result.status == 200
    assert _json(result) == {"object": "list", "model": "text-embedding-005",
                             "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.1]},
                                      {"object": "embedding", "index": 1, "embedding": [0.2, 0.2]}],
                             "usage": {"prompt_tokens": 3, "total_tokens": 3}}
    assert fake_vertex.received[-1].method == "predict"
    assert fake_vertex.received[-1].body["instances"][0] == {"content": "one two", "task_type": "RETRIEVAL_QUERY"}


async def test_token_arrays_are_not_embeddable_text(provider: VertexProvider, make_request: RequestFactory) -> None:
    with pytest.raises(InvalidRequestError, match="string or a list of strings"):
        await provider.embed(make_request({"model": "text-embedding-005", "input": [[1, 2, 3]]},
                                          operation=Operation.EMBEDDING, api_key="ya29.t", vertex_project_id="p"))
