"""HTTP headers that never show a secret (pure).

A request's headers carry the API key from the moment a provider builds them
(``Provider.auth_headers``) to the moment the HTTP library sends them. On the
way they sit in frame locals and dataclass fields, where a verbose
traceback (``%xmode Verbose``, ``TracebackException(capture_locals=True)``)
or a debugger prints them with ``repr``, and a notebook saved afterwards
keeps that text. :class:`Headers` is a read-only mapping whose ``repr`` and
``str`` hide the value of every credential header and of any registered
secret, that refuses to be pickled or turned into JSON, and that aiohttp
and httpx both accept as it is, so no plain ``dict`` holding the key is
ever made in gptmagic's own frames.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NoReturn

from gptmagic.errors import SECRET_HEADERS, redact

__all__ = ["Headers", "is_secret_header"]

_HIDDEN = "[REDACTED]"


def is_secret_header(name: str) -> bool:
    """Whether a header's value is a credential: a known name, or one named like a key.

    ``Idempotency-Key`` is a request's own label, not a credential.
    """
    low = name.lower()
    if low in SECRET_HEADERS:
        return True
    return low != "idempotency-key" and low.endswith(("-key", "-token", "-secret"))


class Headers(Mapping[str, str]):
    """Read-only headers whose ``repr``/``str`` hide credential values.

    >>> Headers({"Authorization": "Bearer sk-x", "Accept": "text/plain"})
    Headers({'Authorization': '[REDACTED]', 'Accept': 'text/plain'})
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, str] = dict(items)

    def __getitem__(self, name: str) -> str:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __or__(self, other: Mapping[str, str]) -> Headers:
        """These headers with ``other``'s added (``other`` wins)."""
        return Headers({**self._items, **other})

    def __repr__(self) -> str:
        shown = {k: _HIDDEN if is_secret_header(k) else redact(v) for k, v in self._items.items()}
        return f"Headers({shown!r})"

    __str__ = __repr__

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        # IPython's pretty printer would otherwise walk the mapping's items.
        p.text(repr(self))

    def __reduce__(self) -> NoReturn:
        # A pickle is a file on disk sooner or later; a key must never be in one.
        raise TypeError("gptmagic Headers hold an API key and are never pickled")

    def __copy__(self) -> Headers:
        return Headers(self._items)

    def __deepcopy__(self, memo: dict[int, Any]) -> Headers:
        return Headers(self._items)
