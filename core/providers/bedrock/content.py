"""OpenAI message content parts → Converse content blocks (text, image, document, audio, cache points).

Blank text is dropped (Converse rejects blank text blocks); ``cache_control`` on a part (Anthropic's prompt-caching
extension, which Portkey accepts) adds a ``cachePoint`` block after it. Remote images must have been fetched before
translation (:func:`core.providers.bedrock.images.fetch_images`), so translation itself stays pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from core.errors import InvalidRequestError
from core.providers.bedrock.images import InlineMedia, image_format, parse_data_url

Block = dict[str, Any]

#: MIME type → Converse DocumentFormat.
DOCUMENT_FORMATS = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html",
    "text/plain": "txt",
    "text/markdown": "md",
}
_IMAGE_EXTENSIONS = {"png": "png", "jpg": "jpeg", "jpeg": "jpeg", "gif": "gif", "webp": "webp"}
_AUDIO_FORMATS = frozenset({"mp3", "wav", "flac", "ogg", "aac", "m4a", "opus", "webm", "pcm", "mpeg"})
_CACHE_TTLS = frozenset({"5m", "1h"})
_NAME_DISALLOWED = re.compile(r"[^A-Za-z0-9\s\-()\[\]]+")


def is_remote(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def cache_point(part: Mapping[str, Any]) -> Block | None:
    control = part.get("cache_control")
    if not isinstance(control, dict):
        return None
    point: dict[str, Any] = {"type": "default"}
    if control.get("ttl") in _CACHE_TTLS:
        point["ttl"] = control["ttl"]
    return {"cachePoint": point}


def text_of(content: Any, *, param: str) -> str:
    """A message's content as plain text (tool results, system prompts): text parts joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for i, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in ("text", "refusal"):
            raise InvalidRequestError(f"{param}[{i}] must be a text part here", param=f"{param}[{i}]")
        texts.append(str(part.get("text") or part.get("refusal") or ""))
    return "".join(texts)


def text_blocks(content: Any, *, param: str) -> list[Block]:
    """Text-only content (system and assistant messages) → text blocks, blank ones dropped."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content.strip() else []
    blocks: list[Block] = []
    for i, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in ("text", "refusal"):
            raise InvalidRequestError(f"{param}[{i}] must be a text part", param=f"{param}[{i}]")
        text = str(part.get("text") or part.get("refusal") or "")
        if text.strip():
            blocks.append({"text": text})
        point = cache_point(part)
        if point is not None and blocks:
            blocks.append(point)
    return blocks


def user_blocks(content: Any, *, param: str, fetched: Mapping[str, InlineMedia]) -> list[Block]:
    if content is None or isinstance(content, str):
        return text_blocks(content, param=param)
    blocks: list[Block] = []
    for i, part in enumerate(content):
        part_param = f"{param}[{i}]"
        if not isinstance(part, dict):
            raise InvalidRequestError(f"{part_param} must be an object", param=part_param)
        kind = part.get("type")
        if kind == "text":
            text = str(part.get("text") or "")
            if text.strip():
                blocks.append({"text": text})
        elif kind == "image_url":
            blocks.append(_image_block(part.get("image_url"), param=part_param, fetched=fetched))
        elif kind == "file":
            blocks.append(_document_block(part.get("file"), param=part_param, index=i))
        elif kind == "input_audio":
            blocks.append(_audio_block(part.get("input_audio"), param=part_param))
        else:
            raise InvalidRequestError(f"{part_param}: content part type {kind!r} is not supported by bedrock",
                                      param=part_param)
        point = cache_point(part)
        if point is not None and blocks:
            blocks.append(point)
    return blocks


def image_url_of(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("url"), str):
        return str(value["url"])
    return None


def _image_block(value: Any, *, param: str, fetched: Mapping[str, InlineMedia]) -> Block:
    url = image_url_of(value)
    if not url:
        raise InvalidRequestError(f"{param}.image_url.url is required", param=param)
    if url.startswith("s3://"):
        extension = url.rsplit(".", 1)[-1].lower()
        fmt = _IMAGE_EXTENSIONS.get(extension)
        if fmt is None:
            raise InvalidRequestError(f"{param}: cannot tell the image format of {url!r} from its extension",
                                      param=param)
        return {"image": {"format": fmt, "source": {"s3Location": {"uri": url}}}}
    if is_remote(url):
        media = fetched.get(url)
        if media is None:
            raise InvalidRequestError(f"{param}: image URL {url!r} was not fetched", param=param)
    else:
        media = parse_data_url(url, param=param)
    return {"image": {"format": image_format(media, param=param), "source": {"bytes": media.data_b64}}}


def _document_block(value: Any, *, param: str, index: int) -> Block:
    if not isinstance(value, dict):
        raise InvalidRequestError(f"{param}.file must be an object", param=param)
    name = document_name(value.get("filename") or value.get("file_name"), index)
    data = value.get("file_data")
    if isinstance(data, str) and data:
        media = parse_data_url(data, param=f"{param}.file.file_data")
        source: dict[str, Any] = {"bytes": media.data_b64}
        mime_type = media.mime_type
    elif isinstance(value.get("file_url"), str) and str(value["file_url"]).startswith("s3://"):
        source = {"s3Location": {"uri": value["file_url"]}}
        mime_type = str(value.get("mime_type") or "").lower()
    else:
        raise InvalidRequestError(
            f"{param}: bedrock needs file.file_data (a base64 data URL) or an s3:// file.file_url with mime_type",
            param=param)
    if mime_type in ("image/png", "image/jpeg", "image/jpg", "image/gif", "image/webp"):
        return {"image": {"format": image_format(InlineMedia(mime_type, ""), param=param), "source": source}}
    fmt = DOCUMENT_FORMATS.get(mime_type)
    if fmt is None:
        raise InvalidRequestError(f"{param}: file type {mime_type or 'unknown'!r} is not supported by bedrock",
                                  param=param)
    return {"document": {"format": fmt, "name": name, "source": source}}


def document_name(filename: Any, index: int) -> str:
    """Converse allows letters, digits, single spaces, hyphens, parentheses and brackets in document names; the
    file extension is dropped (the format field carries it)."""
    stem = str(filename or "")
    if "." in stem:
        stem = stem.rsplit(".", 1)[0]
    name = _NAME_DISALLOWED.sub("-", stem).strip()
    name = re.sub(r"\s+", " ", name)[:200].strip()
    return name or f"document-{index}"


def _audio_block(value: Any, *, param: str) -> Block:
    if not isinstance(value, dict) or not isinstance(value.get("data"), str):
        raise InvalidRequestError(f"{param}.input_audio needs data and format", param=param)
    fmt = str(value.get("format") or "").lower()
    if fmt not in _AUDIO_FORMATS:
        raise InvalidRequestError(f"{param}: audio format {fmt!r} is not supported by bedrock", param=param)
    media = parse_data_url(f"data:audio/{fmt};base64,{value['data']}", param=param)
    return {"audio": {"format": fmt, "source": {"bytes": media.data_b64}}}


def remote_image_urls(messages: Any) -> list[str]:
    """Every http(s) image URL in user messages: they must be fetched before translation."""
    urls: list[str] = []
    if not isinstance(messages, list):
        return urls
    for message in messages:
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            if isinstance(part, dict) and part.get("type") == "image_url":
                url = image_url_of(part.get("image_url"))
                if url and is_remote(url):
                    urls.append(url)
    return urls
