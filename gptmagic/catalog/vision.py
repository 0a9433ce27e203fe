"""Image tokens by OpenAI's published rule (pure; every figure is an estimate).

OpenAI's vision guide (platform.openai.com/docs/guides/images-vision,
"Calculating costs") gives two rules:

- **Patches** (``gpt-4.1-mini``, ``gpt-4.1-nano``, ``o4-mini``, ``gpt-5-mini``,
  ``gpt-5-nano``): the number of 32 px patches covering the image; over 1536 the
  image is scaled down to fit 1536 patches in whole rows and columns; the count
  (at most 1536) times the model's multiplier (1.62, 2.46, 1.72). ``detail`` does
  not change it.
- **Tiles** (``gpt-5``, ``gpt-4o``, ``gpt-4.1``, ``gpt-4.5``, ``gpt-4o-mini``,
  ``o1``, ``o3``, ``computer-use-preview``): ``detail: low`` costs the model's base
  tokens; ``high`` scales the image to fit 2048 x 2048, then its shortest side to
  768 px, and adds the model's tokens per 512 px tile to the base.

``detail: auto`` (and no detail) lets the model choose: it is counted as ``high``,
the upper bound. A model matched by family (``gpt-5.2`` takes ``gpt-5``'s rule)
says so in the rule's name. Models with no published rule get no image count.
The server's own figure is ``POST /responses/input_tokens`` (``--exact-count``).
Dimensions come from the image's header (Pillow, in memory; no I/O).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

from gptmagic.core.images import decode_data_url

__all__ = ["ImageRule", "MAX_PATCHES", "dimensions", "image_rule", "image_tokens"]

#: The most 32 px patches an image is given under the patch rule.
MAX_PATCHES = 1536
_PATCH = 32
_TILE = 512
# Multipliers of the patch rule, by model family.
_PATCHES = {"gpt-5-mini": 1.62, "gpt-5-nano": 2.46, "gpt-4.1-mini": 1.62,
            "gpt-4.1-nano": 2.46, "o4-mini": 1.72}
# (base tokens, tokens per 512 px tile) of the tile rule, by model family.
_TILES = {"gpt-5": (70, 140), "gpt-5-chat-latest": (70, 140), "gpt-4o": (85, 170),
          "chatgpt-4o": (85, 170), "gpt-4.1": (85, 170), "gpt-4.5": (85, 170),
          "gpt-4-turbo": (85, 170), "gpt-4o-mini": (2833, 5667), "o1": (75, 150),
          "o1-pro": (75, 150), "o3": (75, 150), "computer-use-preview": (65, 129)}
# Same prefix, no vision.
_TEXT_ONLY = ("o1-mini", "o1-preview", "o3-mini")
# A header this long holds any of the four formats' dimensions (JPEG's may follow EXIF).
_HEADER = 64 * 1024


@dataclass(frozen=True, slots=True)
class ImageRule:
    """How a model's images are counted: ``"patches"`` (with ``multiplier``) or
    ``"tiles"`` (``base`` + ``per_tile`` for each 512 px tile; ``base`` alone at low
    detail). ``family`` is the name of the model the guide lists."""

    kind: str
    family: str
    multiplier: float = 1.0
    base: int = 0
    per_tile: int = 0

    def describe(self) -> str:
        """``"gpt-4o's tile rule (85 + 170 per 512 px tile)"``."""
        if self.kind == "patches":
            return f"{self.family}'s patch rule (32 px patches × {self.multiplier})"
        return f"{self.family}'s tile rule ({self.base} + {self.per_tile} per 512 px tile)"


def image_rule(model: str) -> ImageRule | None:
    """The published rule for ``model`` (longest family prefix wins), or None."""
    bare = model.rsplit("/", 1)[-1].lower()
    # A fine-tune (``ft:gpt-4o-2024-08-06:org:name:id``) follows its base model's rule;
    # otherwise what follows a ``profile:`` prefix is the model.
    bare = bare.split(":")[1] if bare.startswith("ft:") else bare.rsplit(":", 1)[-1]
    if bare.startswith(_TEXT_ONLY):
        return None
    families = [*_PATCHES, *_TILES]
    family = max((f for f in families if bare.startswith(f)), key=len, default=None)
    if family is None:
        return None
    if family in _PATCHES:
        return ImageRule("patches", family, multiplier=_PATCHES[family])
    base, per_tile = _TILES[family]
    return ImageRule("tiles", family, base=base, per_tile=per_tile)


def _cover(length: float, side: int) -> int:
    """How many ``side``-pixel squares cover ``length`` pixels (float-safe ceil)."""
    return max(1, math.ceil(length / side - 1e-9))


def _patches(width: int, height: int) -> int:
    if _cover(width, _PATCH) * _cover(height, _PATCH) <= MAX_PATCHES:
        return _cover(width, _PATCH) * _cover(height, _PATCH)
    r = math.sqrt(_PATCH**2 * MAX_PATCHES / (width * height))
    r *= min(math.floor(width * r / _PATCH) / (width * r / _PATCH),
             math.floor(height * r / _PATCH) / (height * r / _PATCH))
    return min(_cover(width * r, _PATCH) * _cover(height * r, _PATCH), MAX_PATCHES)


def _tiles(width: int, height: int) -> int:
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        w, h = w * 2048 / max(w, h), h * 2048 / max(w, h)
    if min(w, h) > 768:
        w, h = w * 768 / min(w, h), h * 768 / min(w, h)
    return _cover(w, _TILE) * _cover(h, _TILE)


def image_tokens(width: int, height: int, detail: str | None, rule: ImageRule) -> int:
    """Tokens of one ``width`` x ``height`` image under ``rule`` (``detail`` None or
    ``auto`` counted as ``high``)."""
    if width < 1 or height < 1:
        raise ValueError(f"an image of {width} x {height} pixels has no area")
    if rule.kind == "patches":
        return round(_patches(width, height) * rule.multiplier)
    if detail == "low":
        return rule.base
    return rule.base + rule.per_tile * _tiles(width, height)


def dimensions(url: str) -> tuple[int, int] | None:
    """``(width, height)`` of the image in a base64 data URL, read from its header;
    None for a URL (never fetched) or what Pillow cannot read."""
    from PIL import Image, UnidentifiedImageError

    for prefix in (_HEADER, None):
        decoded = decode_data_url(url, prefix=prefix)
        if decoded is None:
            return None
        try:
            with Image.open(io.BytesIO(decoded[1])) as img:
                return img.size
        except Image.DecompressionBombError:
            return None  # too many pixels to open: not counted (a file is refused so)
        except (UnidentifiedImageError, OSError, ValueError):
            if prefix is None or len(decoded[1]) < prefix:
                return None
    return None
