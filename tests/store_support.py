"""Reading a result store from outside gptmagic, as a second process would (tests and
benchmarks)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

#: A script that holds a store's write lock for argv[2] seconds (timeout 60 s to get it),
#: as another program might; prints "locked" once it has it.
HOLD = r"""
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""


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
