"""Redaction applied while a log record is built, so no secret ever exists in a record.

Headers: credentials (Authorization, api keys, cookies, SigV4 tokens) and every ``x-portkey-*`` header whose name
says key, secret, token or service-account. Config JSON in ``x-portkey-config``: every credential-like field at any
depth. Bodies: the fields named in settings, at any depth, plus credential-like field names.

Names are not enough on their own: an upstream error message may echo the key it was sent. So the values of the
caller's credentials (:func:`secret_values`) are also scrubbed from the serialised record wherever they appear
(:func:`scrub`).

Substrings of bytes are looked for with ``find``, not ``in``: CPython's ``bytes.__contains__`` first tries its
argument as an integer and builds (then discards) a TypeError for every other one, several times the cost of the
search itself on the short texts searched here, for every record.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import orjson

REDACTED = "[REDACTED]"

_SECRET_HEADERS = frozenset(
    {
        "authorization", "proxy-authorization", "api-key", "x-api-key", "cookie", "set-cookie",
        "x-amz-security-token", "x-goog-api-key", "ocp-apim-subscription-key",
    }
)
_SECRET_WORDS = ("key", "secret", "token", "password", "service-account", "credential", "signature")
#: Credential-like field names. ``token(?!s)``: token *counts* (``max_tokens``, ``prompt_tokens_details``) are data.
_SECRET_FIELD_PATTERN = r"api_?key|secret|token(?!s)|password|service_account|credential|private_key|access_key"
_SECRET_FIELD = re.compile(_SECRET_FIELD_PATTERN, re.IGNORECASE)
#: The same, as plain words for a quick screen of a body's bytes ("token" is screened separately).
_SECRET_FIELD_WORDS = ("api_key", "apikey", "secret", "password", "service_account", "credential", "private_key",
                       "access_key")
_NOT_SECRET_FIELDS = frozenset({"virtual_key", "cache_key"})


@functools.lru_cache(maxsize=2048)
def is_secret_header(name: str) -> bool:
    """Memoised: a pure function of a small vocabulary, asked for every header of every record."""
    name = name.lower()
    if name in _SECRET_HEADERS:
        return True
    for prefix in ("x-portkey-", "x-skyrelay-"):
        if name.startswith(prefix):
            rest = name[len(prefix) :]
            return rest != "virtual-key" and any(word in rest for word in _SECRET_WORDS)
    return False


@functools.lru_cache(maxsize=4096)
def is_secret_field(name: str) -> bool:
    return name.lower() not in _NOT_SECRET_FIELDS and _SECRET_FIELD.search(name) is not None


def redact_secret_fields(value: Any) -> Any:
    """A copy of a JSON value with credential-like fields replaced, at any depth."""
    if isinstance(value, dict):
        return {k: (REDACTED if is_secret_field(k) else redact_secret_fields(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_secret_fields(v) for v in value]
    return value


#: How :func:`redact_headers` logs a header, by name.
_KEEP, _HIDE, _CONFIG, _HOST = range(4)


@functools.lru_cache(maxsize=2048)
def _header_rule(name: str) -> tuple[str, int]:
    """A header's logged name and how its value is logged. Memoised: every header of every record asks."""
    lower = name.lower()
    if is_secret_header(lower):
        return lower, _HIDE
    if lower == "x-portkey-config":
        return lower, _CONFIG
    if lower == "x-portkey-custom-host":
        return lower, _HOST
    return lower, _KEEP


def redact_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    if type(headers) is dict:
        plan = _plan(tuple(headers))
        out = headers.copy() if plan.lowercase else dict(zip(plan.names, headers.values(), strict=True))
        for name in plan.hidden:
            out[name] = REDACTED
        if plan.rewritten:
            values = tuple(headers.values())
            for at, name, rewrite in plan.rewritten:
                out[name] = rewrite(values[at])
        return out
    items = headers.items() if isinstance(headers, Mapping) else headers
    out = {}
    for name, value in items:
        lower, rule = _header_rule(name)
        if rule == _KEEP:
            out[lower] = value
        elif rule == _HIDE:
            out[lower] = REDACTED
        elif rule == _CONFIG:
            out[lower] = _redact_config_header(value)
        else:
            out[lower] = _redact_userinfo(value)
    return out


class _HeaderPlan(NamedTuple):
    names: tuple[str, ...]  # the logged name of each header, in order
    lowercase: bool  # the names are logged as they are (ASGI servers give them lowercased)
    hidden: tuple[str, ...]  # logged names whose values are replaced
    rewritten: tuple[tuple[int, str, Callable[[str], str]], ...]  # (position, logged name, rewrite) of the others
    carried: tuple[str, ...]  # names of the headers that can carry credentials (:func:`secret_values`)


@functools.lru_cache(maxsize=1024)
def _plan(names: tuple[str, ...]) -> _HeaderPlan:
    """What to do with each header of a request that has these names, in this order. Memoised per set of names:
    callers send a few, and then most headers of a record are copied in one step instead of one at a time."""
    rules = [_header_rule(name) for name in names]
    rewrites = {_CONFIG: _redact_config_header, _HOST: _redact_userinfo}
    return _HeaderPlan(
        names=tuple(lower for lower, _ in rules),
        lowercase=all(lower == name for name, (lower, _) in zip(names, rules, strict=True)),
        hidden=tuple(lower for lower, rule in rules if rule == _HIDE),
        rewritten=tuple((at, lower, rewrites[rule]) for at, (lower, rule) in enumerate(rules) if rule in rewrites),
        carried=tuple(name for name, (_, rule) in zip(names, rules, strict=True) if rule in (_HIDE, _CONFIG)),
    )


def _redact_userinfo(url: str) -> str:
    """A custom host with credentials is refused, but the refused value is still logged: drop them."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if not sep or "@" not in authority:
        return url
    return f"{scheme}://{REDACTED}@{authority.rpartition('@')[2]}{slash}{path}"


def _redact_config_header(value: str) -> str:
    """A saved config's id is logged as it is; an inline config (a JSON object) with its credential fields hidden;
    anything else is hidden whole. Ids are not handed to the JSON parser: its error costs more than the record."""
    if value.lstrip().startswith(("{", "[")):
        try:
            return orjson.dumps(redact_secret_fields(orjson.loads(value))).decode()
        except orjson.JSONDecodeError:
            return REDACTED
    return value if len(value) < 128 and value.replace("-", "").replace("_", "").isalnum() else REDACTED


#: Shorter values are not scrubbed by value: they would match ordinary text (their header is still redacted).
_MIN_SCRUB_LEN = 8


def secret_values(headers: Mapping[str, str]) -> tuple[bytes, ...]:
    """The credential values a request carried (header values, credential fields of an inline config), as they
    would appear inside a JSON document, longest first."""
    carried = _carried(headers)
    return _secrets(carried).values if carried else ()


def scrub_carried(line: bytes, headers: Mapping[str, str]) -> bytes:
    """``scrub(line, secret_values(headers))``, which runs for every record: most lines hold none of the values,
    and that is settled by looking for the few values that every other one contains (a bearer token, not
    ``Bearer <token>`` as well)."""
    carried = _carried(headers)
    if not carried:
        return line
    secrets = _secrets(carried)
    for value in secrets.screen:
        if line.find(value) != -1:
            return scrub(line, secrets.values)
    return line


def _carried(headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The headers that can carry credentials."""
    if type(headers) is dict:
        return tuple([(name, headers[name]) for name in _plan(tuple(headers)).carried])
    return tuple((name, value) for name, value in headers.items() if _header_rule(name)[1] in (_HIDE, _CONFIG))


class _Secrets(NamedTuple):
    values: tuple[bytes, ...]  # longest first, the order :func:`scrub` replaces them in
    screen: tuple[bytes, ...]  # the values that contain no other: a line holding any value holds one of these


@functools.lru_cache(maxsize=256)
def _secrets(headers: tuple[tuple[str, str], ...]) -> _Secrets:
    """Memoised: most requests repeat a few callers' credentials, and this runs for every record."""
    found: set[str] = set()
    for name, value in headers:
        lower = name.lower()
        if is_secret_header(lower):
            found.add(value)
            scheme, _, token = value.partition(" ")
            if token and scheme.lower() in ("bearer", "basic", "token"):
                found.add(token.strip())
        elif lower == "x-portkey-config" and value.lstrip().startswith("{"):
            try:
                _collect_secret_fields(orjson.loads(value), found)
            except orjson.JSONDecodeError:
                continue
    out: set[bytes] = set()
    for value in found:
        if len(value) >= _MIN_SCRUB_LEN:
            out.add(value.encode())
            out.add(orjson.dumps(value)[1:-1])  # its JSON-escaped form, if escaping changes it
    values = tuple(sorted(out, key=len, reverse=True))
    screen = tuple(v for v in values if not any(other != v and other in v for other in values))
    return _Secrets(values, screen)


def _collect_secret_fields(value: Any, found: set[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if is_secret_field(key):
                if isinstance(item, str):
                    found.add(item)
                else:
                    found.add(orjson.dumps(item).decode())
            _collect_secret_fields(item, found)
    elif isinstance(value, list):
        for item in value:
            _collect_secret_fields(item, found)


def scrub(line: bytes, secrets: Iterable[bytes]) -> bytes:
    """``line`` with every occurrence of each secret value replaced by ``[REDACTED]``."""
    for secret in secrets:
        if line.find(secret) != -1:
            line = line.replace(secret, REDACTED.encode())
    return line


class BodyRedactor:
    """Replaces configured field names anywhere in a body, plus credential-like fields.

    :meth:`for_record` first screens the body's JSON text for any word a hidden key could contain (substring
    searches over the lowercased bytes, a few microseconds); most bodies have none, and then their JSON goes into
    the record as it is, without a redacted copy being built and encoded again. Only a body that mentions such a
    word anywhere (a key, or just text) is walked and copied.
    """

    def __init__(self, fields: Iterable[str]) -> None:
        self.fields = frozenset(f.lower() for f in fields)
        self._verdicts: dict[str, bool] = {}  # per key name: bodies reuse a small vocabulary
        self._words = tuple(w.encode() for w in (*_SECRET_FIELD_WORDS, *sorted(self.fields)))

    def for_record(self, value: Any, raw: bytes | None = None) -> Any:
        """``value`` redacted, ready to embed in a record: an ``orjson.Fragment`` of its JSON when nothing in it
        needs hiding. ``raw``: the JSON it was parsed from, when at hand. ``value`` may itself be JSON bytes
        (a request body as the caller sent it, known to parse): they are parsed only when they need redacting.
        A caller's JSON may spell a key with escapes (``"\\u0061pi_key"``), which the screen cannot see through:
        such bodies are always parsed and walked."""
        if isinstance(value, bytes | bytearray | memoryview):
            value = bytes(value)  # a copy only for the rarer bytes-likes
            if not value:
                return None
            if value.find(b"\\u") != -1 or value.find(b"\\/") != -1:
                return self(orjson.loads(value))
            raw, value = value, None
        elif value is None or type(value) not in (dict, list):
            return value
        if raw is None:
            try:
                raw = orjson.dumps(value)
            except TypeError:
                return self(value)
        if raw.find(b"\n") != -1 or raw.find(b"\r") != -1 or self._suspicious(raw):
            # a record is one line; or some key may need hiding
            return self(orjson.loads(raw) if value is None else value)
        return orjson.Fragment(raw)

    def _suspicious(self, raw: bytes) -> bool:
        """Could any key of this JSON be hidden? A superset of :func:`is_secret_field` and the configured names."""
        low = raw.lower()
        for word in self._words:
            if low.find(word) != -1:
                return True
        at = low.find(b"token")
        while at != -1:
            if low[at + 5 : at + 6] != b"s":  # "token" not followed by "s", as in _SECRET_FIELD_PATTERN
                return True
            at = low.find(b"token", at + 5)
        return False

    def _learn(self, key: str) -> bool:
        verdict = key.lower() in self.fields or is_secret_field(key)
        if len(self._verdicts) < 10_000:
            self._verdicts[key] = verdict
        return verdict

    def __call__(self, value: Any) -> Any:
        kind = type(value)
        if kind is dict:
            return self._dict(value)
        if kind is list:
            return self._list(value)
        return value

    def _dict(self, value: dict[str, Any]) -> dict[str, Any]:
        # Written out rather than recursing through __call__ for every scalar: this runs for every record.
        out: dict[str, Any] = {}
        verdicts = self._verdicts
        for key, item in value.items():
            hide = verdicts.get(key)
            if hide is None:
                hide = self._learn(key)
            if hide:
                out[key] = REDACTED
            else:
                kind = type(item)
                out[key] = self._dict(item) if kind is dict else self._list(item) if kind is list else item
        return out

    def _list(self, value: list[Any]) -> list[Any]:
        return [self._dict(v) if type(v) is dict else self._list(v) if type(v) is list else v for v in value]
