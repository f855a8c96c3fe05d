"""Media for Converse content blocks: data URLs decoded and checked, http(s) image URLs fetched safely.

Converse takes image bytes inline (or an S3 URI), never a web URL, so the gateway fetches ``http(s)`` image URLs
itself — through the SSRF guard like a custom host (static checks, a resolution check, and the guarded resolver on
connect; no redirects followed), with a size limit and a deadline. Anything that cannot be used is a 400 that names
the message part, never a 500 (Portkey 1.15.2's bug B6).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from dataclasses import dataclass

from core.errors import InvalidRequestError
from core.security.ssrf import SsrfGuard
from core.transport.base import TransportError, UpstreamClient

#: MIME type → Converse ImageFormat.
IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif",
                 "image/webp": "webp"}
#: Bedrock's limit for one image (3.75 MB); larger downloads are cut off and refused.
MAX_IMAGE_BYTES = 3_750_000
FETCH_TIMEOUT_S = 10.0
MAX_REMOTE_IMAGES = 20


@dataclass(frozen=True, slots=True)
class InlineMedia:
    """Bytes for a content block, already base64 (the JSON form of a Converse blob)."""

    mime_type: str
    data_b64: str


class InvalidMediaError(InvalidRequestError):
    default_code = "invalid_image"


def parse_data_url(url: str, *, param: str) -> InlineMedia:
    """``data:<mime>;base64,<data>`` → its MIME type and validated base64 data."""
    header, sep, data = url.partition(",")
    if not sep or not header.startswith("data:") or not header.endswith(";base64"):
        raise InvalidMediaError(f"{param} must be a base64 data URL (data:<mime type>;base64,...) or an http(s) URL",
                                param=param)
    mime_type = header[len("data:") : -len(";base64")].strip().lower()
    data = "".join(data.split())
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidMediaError(f"{param} does not hold valid base64 data", param=param) from None
    if not raw:
        raise InvalidMediaError(f"{param} is empty", param=param)
    return InlineMedia(mime_type, data)


def image_format(media: InlineMedia, *, param: str) -> str:
    fmt = IMAGE_FORMATS.get(media.mime_type)
    if fmt is None:
        raise InvalidMediaError(
            f"{param}: image type {media.mime_type or 'unknown'!r} is not supported by bedrock "
            f"(use png, jpeg, gif or webp)", param=param)
    return fmt


def sniff_image_type(data: bytes) -> str | None:
    """The image MIME type from magic bytes, for servers that send no or a generic content type."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


async def fetch_images(urls: list[str], upstream: UpstreamClient, guard: SsrfGuard) -> dict[str, InlineMedia]:
    """Download every distinct http(s) image URL concurrently; the first failure is the request's 400."""
    distinct = list(dict.fromkeys(urls))
    if len(distinct) > MAX_REMOTE_IMAGES:
        raise InvalidMediaError(f"at most {MAX_REMOTE_IMAGES} image URLs can be fetched per request",
                                param="messages")
    if not distinct:
        return {}
    fetched = await asyncio.gather(*(fetch_image(url, upstream, guard) for url in distinct))
    return dict(zip(distinct, fetched, strict=True))


async def fetch_image(url: str, upstream: UpstreamClient, guard: SsrfGuard) -> InlineMedia:
    param = "image_url"
    try:
        guard.check_url(url)
        await guard.check_resolution(url)
    except InvalidRequestError as exc:
        raise InvalidMediaError(f"image URL {url!r} is not allowed: {exc.message}", param=param) from None
    try:
        async with asyncio.timeout(FETCH_TIMEOUT_S):
            data, content_type = await _download(url, upstream)
    except TimeoutError:
        raise InvalidMediaError(f"image URL {url!r} took longer than {FETCH_TIMEOUT_S:g}s to download",
                                param=param) from None
    except TransportError as exc:
        raise InvalidMediaError(f"image URL {url!r} could not be fetched: {exc}", param=param) from None
    mime_type = content_type if content_type in IMAGE_FORMATS else sniff_image_type(data)
    if mime_type is None:
        raise InvalidMediaError(
            f"image URL {url!r} is not a png, jpeg, gif or webp image (content type {content_type or 'none'!r})",
            param=param)
    return InlineMedia(mime_type, base64.b64encode(data).decode("ascii"))


async def _download(url: str, upstream: UpstreamClient) -> tuple[bytes, str]:
    response = await upstream.send("GET", url, headers={"accept": "image/*"})
    try:
        if not 200 <= response.status < 300:
            raise InvalidMediaError(f"image URL {url!r} answered HTTP {response.status}", param="image_url")
        declared = response.header("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_IMAGE_BYTES:
            raise _too_large(url)
        content_type = (response.header("content-type") or "").split(";", 1)[0].strip().lower()
        parts: list[bytes] = []
        size = 0
        async for chunk in response.iter_chunks():
            size += len(chunk)
            if size > MAX_IMAGE_BYTES:
                raise _too_large(url)
            parts.append(chunk)
        return b"".join(parts), content_type
    finally:
        await response.aclose()


def _too_large(url: str) -> InvalidMediaError:
    return InvalidMediaError(f"image URL {url!r} is larger than bedrock's {MAX_IMAGE_BYTES} byte image limit",
                             param="image_url")
