"""One logprob entry per token, where the engine merges the tokens of one character.

A character that takes several tokens (most CJK, emoji, many accented letters
in this model's vocabulary) is sent by llama.cpp as *one* logprob entry: the
whole character's text and bytes, with the id, logprob and alternatives of
its *last* token only; the earlier tokens' entries are dropped. OpenAI sends
one entry per token, the partial ones named ``bytes:\\xe3\\x81``.

This module finds such merged entries and rebuilds them, pure, given:

* the engine's tokenization of each merged character (``pieces``: ids and
  bytes), which says which tokens were merged: when the character's last
  token is the entry's ``id``, the tokens before it are the dropped ones;
* for each dropped token, the engine's distribution at its position
  (``Scored``: measured by :mod:`gptmagic.local.rescore`, which asks the
  engine for that position's top tokens).

The last token keeps the engine's own logprob and alternatives (they are its),
with its own bytes instead of the whole character's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Piece", "Scored", "Split", "find_splits", "generated_ids", "partial_entry",
           "rebuild", "wants_split"]

#: A token of the engine's vocabulary: its id and its exact bytes.
Piece = tuple[int, bytes]


@dataclass(frozen=True)
class Split:
    """Entry ``index`` stands for ``dropped`` tokens followed by its own last token."""

    index: int
    dropped: tuple[Piece, ...]
    last: Piece


@dataclass(frozen=True)
class Scored:
    """The engine's distribution at one position: the chosen token's logprob and the top list."""

    logprob: float
    top: list[dict[str, Any]]


def _raw(entry: dict[str, Any]) -> bytes:
    raw = entry.get("bytes")
    try:
        return bytes(raw) if isinstance(raw, list) else str(entry.get("token", "")).encode()
    except (TypeError, ValueError):
        return b""


def wants_split(entry: Any) -> str | None:
    """The text to tokenize when ``entry`` may hold several tokens (non-ASCII), else ``None``."""
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), int):
        return None
    raw = _raw(entry)
    if raw.isascii():
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None  # a partial character: already one token


def find_splits(entries: Sequence[Any], pieces: dict[str, list[Piece]]) -> list[Split]:
    """The merged entries among ``entries``, given the tokenization of their texts.

    An entry is merged when its text takes several tokens and the last is the
    entry's own id. Texts the model wrote with other tokens than the
    tokenizer's own choice cannot be told apart and are left as they are.
    """
    splits = []
    for index, entry in enumerate(entries):
        text = wants_split(entry)
        tokens = pieces.get(text or "") if text else None
        if not tokens or len(tokens) < 2 or tokens[-1][0] != entry["id"]:
            continue
        if b"".join(raw for _, raw in tokens) != _raw(entry):
            continue
        splits.append(Split(index, tuple(tokens[:-1]), tokens[-1]))
    return splits


def generated_ids(entries: Sequence[Any], splits: Sequence[Split]) -> list[int]:
    """Every generated token id in order, the dropped ones included."""
    by_index = {s.index: s for s in splits}
    ids: list[int] = []
    for index, entry in enumerate(entries):
        split = by_index.get(index)
        if split:
            ids.extend(token_id for token_id, _ in split.dropped)
        ids.append(int(entry["id"]))
    return ids


def partial_entry(token_id: int, raw: bytes, logprob: float,
                  top: list[dict[str, Any]]) -> dict[str, Any]:
    """An engine-shaped entry for one token; ``token`` is empty for part of a character."""
    text = raw.decode("utf-8", errors="replace") if _complete(raw) else ""
    return {"id": token_id, "token": text, "bytes": list(raw), "logprob": logprob,
            "top_logprobs": top}


def _complete(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def rebuild(entries: Sequence[Any], splits: Sequence[Split],
            scores: dict[tuple[int, int], Scored]) -> list[Any]:
    """``entries`` with each split entry replaced by one entry per token.

    ``scores[(entry index, k)]`` is the distribution at the k-th dropped token
    of that entry. A split whose scores are missing is left merged.
    """
    by_index = {s.index: s for s in splits}
    out: list[Any] = []
    for index, entry in enumerate(entries):
        split = by_index.get(index)
        if split is None or any((index, k) not in scores for k in range(len(split.dropped))):
            out.append(entry)
            continue
        for k, (token_id, raw) in enumerate(split.dropped):
            scored = scores[(index, k)]
            out.append(partial_entry(token_id, raw, scored.logprob, scored.top))
        last_id, last_raw = split.last
        out.append(partial_entry(last_id, last_raw, entry.get("logprob"),
                                 entry.get("top_logprobs") or []))
    return out
