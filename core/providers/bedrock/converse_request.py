"""OpenAI chat request → Bedrock Converse / ConverseStream request body.

Converse is a whitelist: only the fields below are sent; other OpenAI params are dropped (as Portkey does), except
``n`` > 1, which Bedrock cannot honour and is refused rather than silently answered once.

- ``system`` and ``developer`` messages, wherever they appear, become ``system`` text blocks in order.
- user / assistant / tool turns become ``messages``; tool results go in user turns, and consecutive turns of the
  same role are merged, as Converse requires alternating roles.
- ``tools`` → ``toolConfig.tools[].toolSpec``; ``tool_choice`` auto / required / named → ``auto`` / ``any`` /
  ``tool``. Converse has no "none": with ``none`` the tools are left out, unless the conversation already holds
  tool calls (Converse then requires ``toolConfig``), in which case they are sent without a choice.
- ``max_completion_tokens`` (or ``max_tokens``), ``temperature``, ``top_p``, ``stop`` → ``inferenceConfig``;
  ``top_k`` → ``additionalModelRequestFields.top_k``.
- Bedrock-specific fields pass through, in Portkey's snake_case or Converse's camelCase:
  ``additional_model_request_fields`` (model-specific params, merged with the above),
  ``additional_model_response_field_paths``, ``guardrail_config`` (``streamProcessingMode`` kept for streams
  only), ``performance_config``, ``request_metadata``, ``prompt_variables``; OpenAI's ``service_tier`` maps to
  ``serviceTier`` (``auto`` means Bedrock's default and is omitted).

``response_format``: ``json_schema`` uses Bedrock's native structured output — ``outputConfig.textFormat`` of type
``json_schema`` with the schema as a JSON string (plus its name and description) — so the model's text answer *is*
the JSON document and the response needs no rewriting, streamed or not. Converse has no schema-less JSON mode, so
``json_object`` appends a system instruction to answer with a single JSON object. ``text`` is the default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from core.api.openai import tool_call_arguments
from core.errors import InvalidRequestError
from core.providers.bedrock.content import Block, cache_point, text_blocks, text_of, user_blocks
from core.providers.bedrock.images import InlineMedia

JSON_OBJECT_INSTRUCTION = "Respond with a single valid JSON object and nothing else."

#: Bedrock passthrough fields: Converse name → the snake_case alias Portkey accepts.
_PASSTHROUGH = {
    "additionalModelResponseFieldPaths": "additional_model_response_field_paths",
    "performanceConfig": "performance_config",
    "requestMetadata": "request_metadata",
    "promptVariables": "prompt_variables",
}
_SERVICE_TIERS = frozenset({"priority", "default", "flex", "reserved"})


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _field(body: Mapping[str, Any], camel: str, snake: str) -> Any:
    value = body.get(snake)
    return body.get(camel) if value is None else value


def converse_body(body: Mapping[str, Any], *, stream: bool, fetched: Mapping[str, InlineMedia] | None = None
                  ) -> dict[str, Any]:
    """The Converse request body (the model id goes in the URL, not the body)."""
    n = body.get("n")
    if n not in (None, 1):
        raise InvalidRequestError("bedrock returns one choice per request; 'n' must be 1", param="n")
    system, messages = _messages(body.get("messages") or [], fetched or {})
    out: dict[str, Any] = {"messages": messages}
    if (instruction := _json_object_instruction(body.get("response_format"))) is not None:
        system.append({"text": instruction})
    if system:
        out["system"] = system
    if inference := _inference_config(body):
        out["inferenceConfig"] = inference
    if (tools := _tool_config(body, _has_tool_blocks(messages))) is not None:
        out["toolConfig"] = tools
    additional = dict(_field(body, "additionalModelRequestFields", "additional_model_request_fields") or {})
    if body.get("top_k") is not None:
        additional.setdefault("top_k", body["top_k"])
    if additional:
        out["additionalModelRequestFields"] = additional
    if (guardrail := _guardrail_config(body, stream=stream)) is not None:
        out["guardrailConfig"] = guardrail
    for camel, snake in _PASSTHROUGH.items():
        value = _field(body, camel, snake)
        if value is not None:
            out[camel] = {_camel(k): v for k, v in value.items()} if camel == "performanceConfig" else value
    tier = body.get("service_tier")
    if tier in _SERVICE_TIERS:
        out["serviceTier"] = {"type": tier}
    if (output := _output_config(body.get("response_format"))) is not None:
        out["outputConfig"] = output
    return out


def _messages(messages: list[Any], fetched: Mapping[str, InlineMedia]) -> tuple[list[Block], list[dict[str, Any]]]:
    system: list[Block] = []
    turns: list[dict[str, Any]] = []

    def add(role: str, blocks: list[Block]) -> None:
        if not blocks:
            return
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.extend(text_blocks(content, param=f"{param}.content"))
        elif role == "user":
            add("user", user_blocks(content, param=f"{param}.content", fetched=fetched))
        elif role == "assistant":
            add("assistant", text_blocks(content, param=f"{param}.content") + _tool_uses(message, param))
        elif role == "tool":
            add("user", [_tool_result(message, param)])
        else:
            raise InvalidRequestError(f"{param}.role {role!r} is not supported by bedrock; use 'tool' messages",
                                      param=f"{param}.role")
    return system, turns


def _tool_uses(message: Mapping[str, Any], param: str) -> list[Block]:
    blocks: list[Block] = []
    for j, call in enumerate(message.get("tool_calls") or []):
        call_param = f"{param}.tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not function.get("name") or not call.get("id"):
            raise InvalidRequestError(f"{call_param} needs an id and a function name", param=call_param)
        parsed = tool_call_arguments(function.get("arguments"), f"{call_param}.function.arguments")
        blocks.append({"toolUse": {"toolUseId": call["id"], "name": function["name"], "input": parsed}})
    return blocks


def _tool_result(message: Mapping[str, Any], param: str) -> Block:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequestError(f"{param}.tool_call_id is required", param=f"{param}.tool_call_id")
    text = text_of(message.get("content"), param=f"{param}.content")
    return {"toolResult": {"toolUseId": call_id, "content": [{"text": text}] if text else []}}


def _has_tool_blocks(turns: list[dict[str, Any]]) -> bool:
    return any("toolUse" in block or "toolResult" in block for turn in turns for block in turn["content"])


def _inference_config(body: Mapping[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        config["maxTokens"] = max_tokens
    if body.get("temperature") is not None:
        config["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        config["topP"] = body["top_p"]
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    stops = [s for s in stops if isinstance(s, str) and s]
    if stops:
        config["stopSequences"] = stops
    return config


def _tool_config(body: Mapping[str, Any], history_uses_tools: bool) -> dict[str, Any] | None:
    specs: list[Block] = []
    for i, tool in enumerate(body.get("tools") or []):
        param = f"tools[{i}]"
        if tool.get("type", "function") != "function":
            raise InvalidRequestError(f"{param}: only function tools are supported by bedrock", param=param)
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise InvalidRequestError(f"{param}.function.name is required", param=f"{param}.function.name")
        spec: dict[str, Any] = {"name": function["name"]}
        if isinstance(function.get("description"), str) and function["description"].strip():
            spec["description"] = function["description"]
        spec["inputSchema"] = {"json": function.get("parameters") or {"type": "object", "properties": {}}}
        if function.get("strict") is True:
            spec["strict"] = True
        specs.append({"toolSpec": spec})
        if (point := cache_point(tool)) is not None:
            specs.append(point)
    choice = body.get("tool_choice")
    if not specs:
        if choice == "required" or isinstance(choice, dict):
            raise InvalidRequestError("tool_choice needs 'tools'", param="tool_choice")
        return None
    if choice == "none":
        return {"tools": specs} if history_uses_tools else None
    config: dict[str, Any] = {"tools": specs}
    if choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") if isinstance(choice.get("function"), dict) else None
        if not name:
            raise InvalidRequestError("tool_choice.function.name is required", param="tool_choice")
        config["toolChoice"] = {"tool": {"name": name}}
    elif choice is not None:
        raise InvalidRequestError("tool_choice must be 'none', 'auto', 'required' or a named function",
                                  param="tool_choice")
    return config


def _guardrail_config(body: Mapping[str, Any], *, stream: bool) -> dict[str, Any] | None:
    value = _field(body, "guardrailConfig", "guardrail_config")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequestError("guardrail_config must be an object", param="guardrail_config")
    config = {_camel(k): v for k, v in value.items()}
    if not stream:
        config.pop("streamProcessingMode", None)
    return config


def _json_object_instruction(response_format: Any) -> str | None:
    if isinstance(response_format, dict) and response_format.get("type") == "json_object":
        return JSON_OBJECT_INSTRUCTION
    return None


def _output_config(response_format: Any) -> dict[str, Any] | None:
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind in ("text", "json_object"):
        return None
    if kind != "json_schema":
        raise InvalidRequestError("response_format.type must be 'text', 'json_object' or 'json_schema'",
                                  param="response_format")
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
        raise InvalidRequestError("response_format.json_schema.schema must be a JSON schema object",
                                  param="response_format.json_schema")
    definition: dict[str, Any] = {"schema": orjson.dumps(spec["schema"]).decode()}
    if isinstance(spec.get("name"), str) and spec["name"]:
        definition["name"] = spec["name"]
    if isinstance(spec.get("description"), str) and spec["description"]:
        definition["description"] = spec["description"]
    return {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": definition}}}
