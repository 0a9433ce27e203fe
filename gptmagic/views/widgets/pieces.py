"""Token bytes to display pieces, for characters split across tokens.

A token is a byte string and need not hold whole UTF-8 characters (an emoji
under cl100k_base is often two or three tokens). :func:`display_pieces` runs
one incremental UTF-8 decoder over the tokens: a token's piece is the text of
the characters its bytes *complete*, so ``"".join(pieces) == text``. A token
that completes nothing gets ``""`` and an entry ``[index, "e2 80"]`` (its
bytes in hex) in ``partial``. Invalid bytes never raise: they decode to
U+FFFD, and bytes left pending after the last token are flushed into the
last piece the same way.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Sequence
from typing import NamedTuple

__all__ = ["Decoded", "alternative_piece", "decode_tokens", "display_pieces", "hex_bytes",
           "piece_bytes"]

_Decoder = codecs.getincrementaldecoder("utf-8")


def hex_bytes(data: bytes) -> str:
    """``b"\\xe2\\x80"`` -> ``"e2 80"``."""
    return data.hex(" ")


def piece_bytes(piece: str | Sequence[int]) -> bytes:
    """The exact bytes of an engine piece: UTF-8 text, or a list of byte values."""
    if isinstance(piece, str):
        return piece.encode("utf-8")
    return bytes(piece)


class Decoded(NamedTuple):
    """Display pieces, partial tokens, and the bytes pending before each token."""

    pieces: list[str]
    partial: list[list[int | str]]
    pending: list[bytes]


def decode_tokens(tokens: Iterable[bytes]) -> Decoded:
    """Decode token byte strings into :class:`Decoded` (see the module doc)."""
    dec = _Decoder(errors="replace")
    pieces: list[str] = []
    partial: list[list[int | str]] = []
    pending: list[bytes] = []
    for i, raw in enumerate(tokens):
        pending.append(dec.getstate()[0])
        piece = dec.decode(raw)
        if not piece and raw:
            partial.append([i, hex_bytes(raw)])
        pieces.append(piece)
    tail = dec.decode(b"", final=True)
    if tail and pieces:
        pieces[-1] += tail
        if partial and partial[-1][0] == len(pieces) - 1:
            partial.pop()
    return Decoded(pieces, partial, pending)


def display_pieces(tokens: Iterable[bytes]) -> tuple[list[str], list[list[int | str]]]:
    """``(pieces, partial)`` for a sequence of token byte strings (see the module doc)."""
    d = decode_tokens(tokens)
    return d.pieces, d.partial


def alternative_piece(pending: bytes, alt: bytes) -> str:
    """How an alternative token reads at a position where ``pending`` bytes await completion.

    Decoded like the chosen token would be (so an alternative that completes
    the pending character shows that character); one that completes no
    character is shown as escaped bytes, e.g. ``\\xe6\\x97``.
    """
    if not pending:
        try:
            return alt.decode("utf-8")
        except UnicodeDecodeError:
            pass
    dec = _Decoder(errors="replace")
    dec.setstate((pending, 0))
    text = dec.decode(alt)
    return text or alt.decode("utf-8", "backslashreplace")
