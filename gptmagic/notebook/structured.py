"""``%%chat --schema NAME``: the schema a cell names, found in the notebook (no IPython here).

NAME is a variable of the notebook (``Person``), or a dotted path into one
(``models.Person``); an expression (``schemas["person"]``) is not a name: assign it
to one first. What it names must be a Pydantic model class, a ``TypedDict``, a dataclass or a
JSON-schema dict (:func:`gptmagic.core.structured.schema_from`); a dict is sent
under its ``title``, else under NAME. Every refusal names ``--schema`` and says
how to fix it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gptmagic.core.structured import Schema, schema_from
from gptmagic.core.text import did_you_mean
from gptmagic.errors import RequestError

__all__ = ["schema_option"]

_OPTION = "--schema"


def _schema_like(value: Any) -> bool:
    """What ``--schema`` could name: a class, or a dict that looks like a JSON schema."""
    return isinstance(value, type) or (isinstance(value, Mapping) and
                                       ("properties" in value or "type" in value))


def schema_option(name: str, namespace: Mapping[str, Any], *, json_mode: bool = False) -> Schema:
    """The strict :class:`~gptmagic.core.structured.Schema` that ``--schema name`` names.

    ``json_mode`` (``--json`` given too) is refused: a schema is JSON with a shape,
    and the two would ask for two response formats."""
    if json_mode:
        raise RequestError("--json and --schema both set the reply's format: give one "
                           "(--schema NAME is JSON with a shape, validated into _chat.parsed)",
                           param=_OPTION)
    head, *rest = name.split(".")
    if not head.isidentifier() or not all(part.isidentifier() for part in rest):
        raise RequestError(f"--schema needs the name of a variable (Person, or models.Person), "
                           f"got {name!r}", param=_OPTION)
    if head not in namespace:
        known = [k for k, v in namespace.items() if _schema_like(v) and not k.startswith("_")]
        raise RequestError(f"--schema {name}: no variable named {head!r} in the notebook"
                           f"{did_you_mean(head, known)}; define it first (class "
                           f"{head}(BaseModel): ...), or run the cell that does", param=_OPTION)
    obj = namespace[head]
    for i, part in enumerate(rest, 1):
        if not hasattr(obj, part):
            hint = did_you_mean(part, [a for a in dir(obj) if not a.startswith("_")])
            raise RequestError(f"--schema {name}: {'.'.join([head, *rest[:i - 1]])} has no "
                               f"attribute {part!r}{hint}", param=_OPTION)
        obj = getattr(obj, part)
    try:
        # A dict has no name of its own: the variable's is the one the reader knows.
        title = obj.get("title") if isinstance(obj, Mapping) else None
        given = rest[-1] if rest else head
        return schema_from(obj, name=given if isinstance(obj, Mapping) and not title
                           else None)
    except RequestError as e:
        raise RequestError(f"--schema {name}: {e}", param=_OPTION) from None
