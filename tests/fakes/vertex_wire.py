"""Strict validators for the request bodies Vertex accepts, shared by the fake Vertex and the golden tests.

Gemini bodies are checked with the ``google-genai`` package's own pydantic types (camelCase only, extra fields
forbidden) plus the rules Vertex enforces beyond the types: user/model roles, no empty text, one data field per
part, base64 inline data, schemas in the OpenAPI subset with upper-case types, and as many function responses as
the previous turn made calls. Claude bodies are checked against the documented Messages request shape for Vertex
(``anthropic_version`` in the body, no ``model``), including the tool_use → tool_result pairing the API enforces.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from google.genai import types as genai
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel


class WireError(ValueError):
    """The body is not something Vertex would accept; the message says why."""


# --- Gemini -------------------------------------------------------------------------------------------------------
class GenerateContentRequest(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, extra="forbid")

    contents: list[genai.Content] = Field(min_length=1)
    system_instruction: genai.Content | None = None
    tools: list[genai.Tool] | None = None
    tool_config: genai.ToolConfig | None = None
    generation_config: genai.GenerationConfig | None = None
    safety_settings: list[genai.SafetySetting] | None = None
    labels: dict[str, str] | None = None
    cached_content: str | None = None


_DATA_FIELDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode",
                "codeExecutionResult")
_SCHEMA_KEYS = frozenset({"type", "format", "title", "description", "nullable", "default", "example", "enum",
                          "items", "minItems", "maxItems", "minLength", "maxLength", "pattern", "minimum", "maximum",
                          "properties", "required", "minProperties", "maxProperties", "propertyOrdering", "anyOf"})
_SCHEMA_TYPES = frozenset({"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT"})


def validate_gemini_request(body: Any) -> None:
    try:
        GenerateContentRequest.model_validate(body, by_alias=True, by_name=False)
    except ValidationError as exc:
        raise WireError(str(exc)) from None
    for i, content in enumerate(body["contents"]):
        if content.get("role") not in ("user", "model"):
            raise WireError(f"contents[{i}].role must be user or model")
        _check_parts(content.get("parts"), f"contents[{i}]")
    if "systemInstruction" in body:
        _check_parts(body["systemInstruction"].get("parts"), "systemInstruction")
        if any("text" not in p for p in body["systemInstruction"]["parts"]):
            raise WireError("systemInstruction may only hold text")
    _check_function_turns(body["contents"])
    names = set()
    for tool in body.get("tools") or []:
        for declaration in tool.get("functionDeclarations") or []:
            names.add(declaration["name"])
            if "parameters" in declaration:
                _check_schema(declaration["parameters"], f"functionDeclarations[{declaration['name']}].parameters")
    calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    for name in calling.get("allowedFunctionNames") or []:
        if name not in names or calling.get("mode") != "ANY":
            raise WireError("allowedFunctionNames needs mode ANY and declared functions")
    schema = (body.get("generationConfig") or {}).get("responseSchema")
    if schema is not None:
        _check_schema(schema, "generationConfig.responseSchema")


def _check_parts(parts: Any, where: str) -> None:
    if not parts:
        raise WireError(f"{where}.parts must not be empty")
    for j, part in enumerate(parts):
        present = [f for f in _DATA_FIELDS if f in part]
        if len(present) != 1:
            raise WireError(f"{where}.parts[{j}] must hold exactly one data field, has {present}")
        if "text" in part and not part["text"]:
            raise WireError(f"{where}.parts[{j}].text must not be empty")
        if "inlineData" in part:
            try:
                base64.b64decode(part["inlineData"]["data"], validate=True)
            except (binascii.Error, ValueError):
                raise WireError(f"{where}.parts[{j}].inlineData.data is not base64") from None


def _check_function_turns(contents: list[dict[str, Any]]) -> None:
    for i, content in enumerate(contents):
        calls = [p["functionCall"]["name"] for p in content["parts"] if "functionCall" in p]
        if not calls:
            continue
        following = contents[i + 1]["parts"] if i + 1 < len(contents) else None
        if following is None:
            continue
        responses = [p["functionResponse"]["name"] for p in following if "functionResponse" in p]
        if sorted(responses) != sorted(calls):
            raise WireError("Please ensure that the number of function response parts is equal to the number of "
                            f"function call parts of the function call turn (calls {calls}, responses {responses})")


def _check_schema(schema: Any, where: str) -> None:
    if not isinstance(schema, dict):
        raise WireError(f"{where} must be an object")
    unknown = set(schema) - _SCHEMA_KEYS
    if unknown:
        raise WireError(f"{where}: unknown schema fields {sorted(unknown)}")
    if "type" in schema and schema["type"] not in _SCHEMA_TYPES:
        raise WireError(f"{where}.type {schema['type']!r} is not a Gemini type")
    if "enum" in schema and (schema.get("type") != "STRING" or not all(isinstance(v, str) for v in schema["enum"])):
        raise WireError(f"{where}.enum is only for STRING schemas")
    for name, sub in (schema.get("properties") or {}).items():
        _check_schema(sub, f"{where}.properties.{name}")
    for name in schema.get("required") or []:
        if name not in (schema.get("properties") or {}):
            raise WireError(f"{where}.required names an undefined property {name!r}")
    if "items" in schema:
        _check_schema(schema["items"], f"{where}.items")
    for k, sub in enumerate(schema.get("anyOf") or []):
        _check_schema(sub, f"{where}.anyOf[{k}]")


# --- Claude (Anthropic Messages on Vertex) ------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CacheControl(_Strict):
    type: Literal["ephemeral"]
    ttl: Literal["5m", "1h"] | None = None


class TextBlock(_Strict):
    type: Literal["text"]
    text: str = Field(min_length=1)
    cache_control: CacheControl | None = None


class Base64Source(_Strict):
    type: Literal["base64"]
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp", "application/pdf", "text/plain"]
    data: str


class UrlSource(_Strict):
    type: Literal["url"]
    url: str


class ImageBlock(_Strict):
    type: Literal["image"]
    source: Base64Source | UrlSource
    cache_control: CacheControl | None = None


class DocumentBlock(_Strict):
    type: Literal["document"]
    source: Base64Source | UrlSource
    title: str | None = None
    context: str | None = None
    cache_control: CacheControl | None = None


class ToolUseBlock(_Strict):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]
    cache_control: CacheControl | None = None


class ToolResultBlock(_Strict):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[Annotated[TextBlock | ImageBlock, Field(discriminator="type")]] | None = None
    is_error: bool | None = None
    cache_control: CacheControl | None = None


class ThinkingBlock(_Strict):
    type: Literal["thinking"]
    thinking: str
    signature: str


class RedactedThinkingBlock(_Strict):
    type: Literal["redacted_thinking"]
    data: str


Block = Annotated[TextBlock | ImageBlock | DocumentBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock
                  | RedactedThinkingBlock, Field(discriminator="type")]


class Message(_Strict):
    role: Literal["user", "assistant"]
    content: str | list[Block] = Field(min_length=1)


class CustomTool(_Strict):
    type: Literal["custom"] | None = None
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,128}$")
    description: str | None = None
    input_schema: dict[str, Any]
    cache_control: CacheControl | None = None


class ToolChoice(_Strict):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class Metadata(_Strict):
    user_id: str | None = None


class Thinking(_Strict):
    type: Literal["enabled", "disabled"]
    budget_tokens: int | None = Field(default=None, ge=1024)


class VertexMessagesRequest(_Strict):
    anthropic_version: Literal["vertex-2023-10-16"]
    messages: list[Message] = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    system: str | list[TextBlock] | None = None
    stop_sequences: list[str] | None = None
    stream: bool | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = None
    top_k: int | None = None
    tools: list[CustomTool] | None = None
    tool_choice: ToolChoice | None = None
    metadata: Metadata | None = None
    thinking: Thinking | None = None
    anthropic_beta: list[str] | None = None


def validate_claude_request(body: Any, *, stream: bool) -> None:
    try:
        request = VertexMessagesRequest.model_validate(body)
    except ValidationError as exc:
        raise WireError(str(exc)) from None
    if bool(request.stream) != stream:
        raise WireError("stream must be true exactly for streamRawPredict")
    for tool in request.tools or []:
        if tool.input_schema.get("type") != "object":
            raise WireError(f"tools.{tool.name}.input_schema.type must be 'object'")
    if request.tool_choice is not None and request.tool_choice.type == "tool" and not request.tool_choice.name:
        raise WireError("tool_choice.name is required for type tool")
    for i, message in enumerate(request.messages):
        previous = request.messages[i - 1] if i else None
        results = [b.tool_use_id for b in message.content if isinstance(b, ToolResultBlock)] if isinstance(
            message.content, list) else []
        if results:
            uses = [b.id for b in previous.content if isinstance(b, ToolUseBlock)] if previous is not None and \
                isinstance(previous.content, list) else []
            if sorted(results) != sorted(uses):
                raise WireError(f"messages.{i}: tool_result blocks {results} do not answer the tool_use blocks {uses} "
                                "of the previous message")
            kinds = [b.type for b in message.content] if isinstance(message.content, list) else []
            if kinds[: len(results)] != ["tool_result"] * len(results):
                raise WireError(f"messages.{i}: tool_result blocks must come first")


# --- text embeddings (:predict) -----------------------------------------------------------------------------------
class EmbeddingInstance(_Strict):
    content: str
    task_type: Literal["RETRIEVAL_QUERY", "RETRIEVAL_DOCUMENT", "SEMANTIC_SIMILARITY", "CLASSIFICATION",
                       "CLUSTERING", "QUESTION_ANSWERING", "FACT_VERIFICATION", "CODE_RETRIEVAL_QUERY"] | None = None
    title: str | None = None


class EmbeddingParameters(_Strict):
    autoTruncate: bool | None = None
    outputDimensionality: int | None = Field(default=None, ge=1)


class PredictRequest(_Strict):
    instances: list[EmbeddingInstance] = Field(min_length=1)
    parameters: EmbeddingParameters | None = None


def validate_predict_request(body: Any) -> None:
    try:
        PredictRequest.model_validate(body)
    except ValidationError as exc:
        raise WireError(str(exc)) from None
