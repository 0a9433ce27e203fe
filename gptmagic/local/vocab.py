"""The model's control tokens, read from its GGUF file.

llama.cpp, tokenizing with special-token parsing on (as its chat endpoint
does with the rendered template), turns every occurrence of a control
token's text into that token, wherever the text came from. Which texts those
are is in the weights file: the tokenizer's token list and each token's type.
The engine's HTTP API does not list them, so they are read here, once per
server (:mod:`gptmagic.local.verbatim_engine` keeps them).

GGUF (llama.cpp's ``gguf.md``): ``"GGUF"``, a version, the tensor and
key/value counts, then the key/value pairs, little-endian; strings are a
``uint64`` length and UTF-8 bytes. Only the pairs up to the two needed are read.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import IO, Any

__all__ = ["read_control_tokens"]

#: Token types (llama.cpp's ``llama_token_type``) that special parsing matches and plain
#: parsing does not: CONTROL and UNKNOWN. USER_DEFINED tokens are matched either way.
_SPECIAL_TYPES = frozenset({2, 3})

_TOKENS, _TYPES = "tokenizer.ggml.tokens", "tokenizer.ggml.token_type"

#: GGUF value types of fixed size, as struct formats.
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q",
            12: "d"}
_STRING, _ARRAY = 8, 9
_U64 = struct.Struct("<Q")


class _Reader:
    def __init__(self, f: IO[bytes]) -> None:
        self.f = f

    def take(self, fmt: str) -> Any:
        size = struct.calcsize("<" + fmt)
        data = self.f.read(size)
        if len(data) != size:
            raise ValueError("the GGUF file ends early")
        return struct.unpack("<" + fmt, data)[0]

    def string(self) -> str:
        size = self.take("Q")
        return self.f.read(size).decode("utf-8", errors="replace")

    def value(self, kind: int, keep: bool) -> Any:
        """One value of GGUF type ``kind``; skipped (``None``) unless ``keep``."""
        if kind in _SCALARS:
            return self.take(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind != _ARRAY:
            raise ValueError(f"unknown GGUF value type {kind}")
        item, count = self.take("I"), self.take("Q")
        if item in _SCALARS:
            size = struct.calcsize("<" + _SCALARS[item])
            if not keep:
                self.f.seek(count * size, 1)
                return None
            data = self.f.read(count * size)
            return list(struct.unpack(f"<{count}{_SCALARS[item]}", data))
        if item == _STRING:
            return self.strings(count, keep)
        values = [self.value(item, keep) for _ in range(count)]
        return values if keep else None

    def strings(self, count: int, keep: bool) -> list[str] | None:
        """An array of ``count`` strings (a vocabulary: tens of thousands, so kept tight)."""
        read, length = self.f.read, _U64.unpack
        if not keep:
            for _ in range(count):
                self.f.seek(length(read(8))[0], 1)
            return None
        return [read(length(read(8))[0]).decode("utf-8", errors="replace")
                for _ in range(count)]


def read_control_tokens(path: str | Path) -> dict[str, int]:
    """``{text: id}`` of the tokens special parsing turns text into (CONTROL and UNKNOWN).

    For the embedded SmolLM2 these are its 17 ``<|im_start|>``-like tokens.
    Raises ``ValueError`` for a file that is not GGUF or lacks a token list.
    """
    found: dict[str, Any] = {}
    with open(path, "rb") as f:
        reader = _Reader(f)
        if f.read(4) != b"GGUF":
            raise ValueError(f"{path} is not a GGUF file")
        try:
            reader.take("I")  # version
            reader.take("Q")  # tensors
            pairs = reader.take("Q")
            for _ in range(pairs):
                key = reader.string()
                kind = reader.take("I")
                found[key] = reader.value(kind, keep=key in (_TOKENS, _TYPES))
                if found.get(_TOKENS) is not None and found.get(_TYPES) is not None:
                    break
        except struct.error:
            raise ValueError(f"{path} ends inside its metadata") from None
    tokens, types = found.get(_TOKENS), found.get(_TYPES)
    if not isinstance(tokens, list) or not isinstance(types, list) or len(tokens) != len(types):
        raise ValueError(f"{path} has no token list with types")
    return {text: i for i, (text, kind) in enumerate(zip(tokens, types, strict=True))
            if kind in _SPECIAL_TYPES and text}
