"""Image parts as the fake server takes them: checked against OpenAI's spec, decoded.

Chat's ``image_url`` parts validate against ``ChatCompletionRequestMessageContentPartImage``
and the Responses API's ``input_image`` parts against ``InputImageContent`` (both
from the vendored spec, :mod:`openapi_schema`); a data URL must be base64 of an image
Pillow reads, in a format OpenAI takes (PNG, JPEG, WEBP, GIF), and an http(s) URL
is taken as it is (never fetched). Anything else is the 400 OpenAI would give,
naming the part. The echo shows each image as ``[image 64x32 PNG]`` (or ``[image
https://...]``), so a test sees the server decoded what was sent.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

_SCHEMAS = {"image_url": "ChatCompletionRequestMessageContentPartImage",
            "input_image": "InputImageContent"}
_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")


def _url(part: dict) -> Any:
    inner = part.get("image_url")
    return inner.get("url") if isinstance(inner, dict) else inner


def _decode(url: str) -> tuple[str, tuple[int, int]]:
    """(format, size) of a data URL's image; ValueError saying what is wrong."""
    from PIL import Image, UnidentifiedImageError

    head, sep, body = url.partition(",")
    if not sep or not head.startswith("data:image/") or not head.endswith(";base64"):
        raise ValueError("expected a data URL data:image/<type>;base64,...")
    try:
        data = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the data URL is not valid base64") from None
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, size = str(img.format), img.size
    except (UnidentifiedImageError, OSError):
        raise ValueError("the data URL does not hold an image") from None
    if fmt not in _FORMATS:
        raise ValueError(f"unsupported image format {fmt}")
    said = head[len("data:"):].removesuffix(";base64")
    if said != f"image/{fmt.lower()}":
        raise ValueError(f"the data URL says {said} but holds a {fmt} image")
    return fmt, size


def check(data: dict, kind: str) -> tuple[str, str] | None:
    """``(message, param)`` of the 400 for the first bad image part of a chat
    (``kind="chat"``) or Responses (``"responses"``) request; None when all are good."""
    from openapi_schema import validate

    key, items = ("messages", data.get("messages")) if kind == "chat" else \
        ("input", data.get("input"))
    for i, item in enumerate(items if isinstance(items, list) else []):
        content = item.get("content") if isinstance(item, dict) else None
        for j, part in enumerate(content if isinstance(content, list) else []):
            schema = _SCHEMAS.get(part.get("type")) if isinstance(part, dict) else None
            if schema is None:
                continue
            where = f"{key}[{i}].content[{j}]"
            if (part["type"] == "image_url") != (kind == "chat"):
                return f"Invalid content part type {part['type']!r} on this endpoint.", where
            try:
                validate(part, schema)
            except Exception as e:  # noqa: BLE001 - jsonschema's ValidationError
                return f"Invalid image part: {getattr(e, 'message', e)}", where
            url = _url(part)
            if not isinstance(url, str) or url.startswith(("http://", "https://")):
                continue
            try:
                _decode(url)
            except ValueError as e:
                return f"Invalid image URL: {e}.", where
    return None


def describe(part: dict) -> str:
    """``[image 64x32 PNG]`` for a data URL, ``[image https://...]`` for a URL."""
    url = _url(part)
    if isinstance(url, str) and url.startswith("data:"):
        fmt, (w, h) = _decode(url)
        return f"[image {w}x{h} {fmt}]"
    return f"[image {url}]"
