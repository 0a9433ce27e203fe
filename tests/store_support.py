"""Reading a result store from outside gptmagic, as a second process would (tests and
benchmarks)."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def stored(cache: Path) -> int:
    """How many calls the store at ``cache`` holds (0 when there is no store yet)."""
    if not cache.exists():
        return 0
    db = sqlite3.connect(f"file:{cache}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT COUNT(*) FROM calls").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()
