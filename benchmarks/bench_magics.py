"""Overhead of the %%chat magic over the bare client call (model time excluded).

The fake server runs in its own process and answers at once, so what is left
is gptmagic's own work per cell: option parsing, the cell grammar, history,
fitting, streaming into the live view, pricing and rendering. Target: under
20 ms per cell.

Run: python benchmarks/bench_magics.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FAKE = Path(__file__).resolve().parent.parent / "tests" / "fakeserver.py"


def per_call(fn, n: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    os.environ["IPYTHONDIR"] = tempfile.mkdtemp()
    proc = subprocess.Popen([sys.executable, str(FAKE)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    try:
        from IPython.core.interactiveshell import InteractiveShell
        from IPython.utils.capture import capture_output

        import gptmagic

        gptmagic.add_profile("fake", base_url=url, default_model="fake-model")
        sh = InteractiveShell.instance()
        sh.run_line_magic("load_ext", "gptmagic")
        msgs = [{"role": "user", "content": "hello there"}]
        n = 200
        bare = per_call(lambda: gptmagic.chat(msgs, provider="fake"), n)
        bare_s = per_call(lambda: gptmagic.chat(msgs, provider="fake", stream=True), n)

        def cell(line: str, body: str = "user: hello there") -> None:
            with capture_output():
                sh.run_cell_magic("chat", line, body)

        magic = per_call(lambda: cell("-p fake --no-history --no-stream"), n)
        magic_s = per_call(lambda: cell("-p fake --no-history"), n)
        for i in range(20):  # a 20-turn thread, resent and fitted every cell
            cell("-p fake --thread long", f"user: turn {i} " + "word " * 50)
        hist = per_call(lambda: cell("-p fake --thread long -m gpt-4o"), n // 4)
        bare_h = per_call(lambda: gptmagic.chat(
            sh.magics_manager.registry["GptMagics"].session.threads.get("long").messages(),
            provider="fake", model="gpt-4o", stream=True), n // 4)
        print(f"bare client call (gptmagic.chat)      {bare:6.2f} ms   streamed {bare_s:6.2f} ms")
        print(f"%%chat, no history                     {magic:6.2f} ms   "
              f"streamed {magic_s:6.2f} ms")
        print(f"overhead per cell                      {magic - bare:6.2f} ms   streamed "
              f"{magic_s - bare_s:6.2f} ms")
        print(f"%%chat with a 21-turn thread (gpt-4o)  {hist:6.2f} ms   bare {bare_h:6.2f} ms   "
              f"overhead {hist - bare_h:6.2f} ms")
    finally:
        proc.stdin.close()
        proc.wait(10)


if __name__ == "__main__":
    main()
