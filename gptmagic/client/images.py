"""Reading the images a prompt names: local files as checked data URLs, URLs as they are.

The cell grammar finds ``![alt](src)`` (:mod:`gptmagic.core.images`, pure); this
is the I/O. A relative path starts at ``base`` (a notebook's working directory).
A file is read once, its format and size checked against OpenAI's image input
requirements (vision guide: PNG, JPEG, WEBP or non-animated GIF; up to 20 MB an
image, 500 images and 50 MB in all a request), and sent as a base64 data URL.
An http(s) URL is sent as written: gptmagic never fetches it, so its size and
tokens are unknown before the server answers (a dry run says so). Every error
names the image, its cell line and what to do.
"""

from __future__ import annotations

import base64
import copy
import io
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from gptmagic.core.cellsyntax import CellSyntaxError
from gptmagic.core.images import DETAILS, ImageRef, decode_data_url, image_part, quoted
from gptmagic.core.messages import Cell
from gptmagic.errors import RequestError

__all__ = ["FORMATS", "MAX_IMAGES", "MAX_IMAGE_BYTES", "MAX_REQUEST_BYTES", "load_images",
           "read_image"]

#: Pillow's format name -> the MIME type sent (OpenAI takes these four).
FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
#: OpenAI's limit on one image's file (vision guide: "up to 20 MB per image").
MAX_IMAGE_BYTES = 20 * 1024 * 1024
#: OpenAI's limits on one request: its images' bytes and their number.
MAX_REQUEST_BYTES = 50 * 1024 * 1024
MAX_IMAGES = 500
_URL_SCHEMES = ("http://", "https://")


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


def _fail(ref: ImageRef, problem: str, expected: str) -> CellSyntaxError:
    return CellSyntaxError(f"image {quoted(ref.written)} {problem}", expected, line=ref.line)


def _check_bytes(ref: ImageRef, n: int, what: str) -> None:
    if n > MAX_IMAGE_BYTES:
        raise _fail(ref, f"is {_mb(n)} ({what}); OpenAI takes up to "
                    f"{_mb(MAX_IMAGE_BYTES)} an image",
                    "a smaller file: scale it down or save it as JPEG (Pillow's "
                    "Image.thumbnail, then save), or give an https URL")


def _checked(ref: ImageRef, data: bytes, what: str) -> tuple[str, tuple[int, int]]:
    """The MIME type and size in pixels of ``data``, if OpenAI takes it as an image."""
    from PIL import Image, UnidentifiedImageError

    _check_bytes(ref, len(data), what)
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, size = img.format, img.size
            animated = bool(getattr(img, "is_animated", False))
    except Image.DecompressionBombError as e:  # a small file of a huge number of pixels
        raise _fail(ref, f"is too many pixels to read safely ({what}: {e})",
                    "the image scaled down (OpenAI scales it to 2048 px at most anyway)") \
            from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise _fail(ref, f"is not an image Pillow can read ({what})",
                    "a PNG, JPEG, WEBP or GIF file") from None
    if fmt not in FORMATS:
        raise _fail(ref, f"is a {fmt} image ({what}); OpenAI takes PNG, JPEG, WEBP and "
                    "non-animated GIF", "the image converted to PNG or JPEG") from None
    if fmt == "GIF" and animated:
        raise _fail(ref, f"is an animated GIF ({what}); OpenAI takes only still GIFs",
                    "one frame saved as PNG") from None
    return FORMATS[fmt], size


def read_image(ref: ImageRef, base: str | os.PathLike[str]) -> ImageRef:
    """``ref`` with its ``url`` (a data URL of the checked file, or the http(s) URL as
    written), ``size`` and ``dimensions`` filled; the path is relative to ``base``."""
    src = ref.src
    if src.lower().startswith(_URL_SCHEMES):
        return replace(ref, url=src)
    if src.startswith("data:"):
        decoded = decode_data_url(src)
        if decoded is None:
            raise _fail(ref, "is a data URL that is not base64",
                        "data:image/png;base64,... or a file path")
        mime, size = _checked(ref, decoded[1], "a data URL")
        return replace(ref, url=src, size=len(decoded[1]), dimensions=size)
    if "://" in src or src.lower().startswith("file:"):
        raise _fail(ref, "has a URL gptmagic does not read",
                    "a file path (cat.png, /data/cat.png) or an http(s) URL the server "
                    "fetches")
    path = Path(src).expanduser()
    full = path if path.is_absolute() else Path(base) / path
    if not full.is_file():
        said = "is a folder" if full.is_dir() else "names no file"
        raise _fail(ref, f"{said}: {full} (a relative path starts at the notebook's working "
                    f"directory, {base})", "the path of an image file, or an http(s) URL")
    try:
        _check_bytes(ref, full.stat().st_size, str(full))  # before reading it all
        data = full.read_bytes()
    except OSError as e:
        raise _fail(ref, f"cannot be read: {e.strerror or e}",
                    "a file this process may read") from None
    mime, size = _checked(ref, data, str(full))
    url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return replace(ref, url=url, size=len(data), dimensions=size)


def load_images(cell: Cell, *, base: str | os.PathLike[str],
                detail: str | None = None) -> Cell:
    """``cell`` with every image read (:func:`read_image`) and its part's ``url`` the
    one sent; ``detail`` is the default for images that give none (``--detail``).
    Raises :class:`~gptmagic.core.cellsyntax.CellSyntaxError` for an image OpenAI
    would refuse, and a :class:`~gptmagic.errors.RequestError` for a cell past the
    request's limits."""
    if detail is not None and detail not in DETAILS:
        raise RequestError(f"--detail must be one of {', '.join(DETAILS)}; got {detail!r}",
                           param="--detail")
    if not cell.images:
        return cell
    if len(cell.images) > MAX_IMAGES:
        raise RequestError(f"the cell holds {len(cell.images)} images; OpenAI takes up to "
                           f"{MAX_IMAGES} a request: split it over several cells",
                           param="cell")
    messages: list[dict[str, Any]] = copy.deepcopy(cell.messages)
    refs = []
    for ref in cell.images:
        read = read_image(replace(ref, detail=ref.detail or detail), base)
        messages[ref.message]["content"][ref.part] = image_part(str(read.url), read.detail)
        refs.append(read)
    total = sum(r.size or 0 for r in refs)
    if total > MAX_REQUEST_BYTES:
        raise RequestError(f"the cell's images are {_mb(total)} in all; OpenAI takes up to "
                           f"{_mb(MAX_REQUEST_BYTES)} a request: send fewer or smaller images",
                           param="cell")
    return Cell(messages, tuple(refs))
