"""Counting overhead against raw tiktoken, and a 100k-token conversation.

- text: ``count_tokens(text, model)`` against ``encoding.encode(text)`` on the
  same encoding object, same text (ratio; target within 10%);
- chat: a conversation of ~100k tokens (400 messages) counted with its
  per-message breakdown, against encoding every content string raw;
- the embedded model: the same conversation counted by its engine.

Run: python benchmarks/bench_tokens.py
"""

from __future__ import annotations

import random
import time

from gptmagic.catalog.tokens import get_encoding
from gptmagic.tokens import count_tokens

WORDS = ("the quick brown fox jumps over a lazy dog while prompts tokens cost money "
         "Größe naïve café 日本語 emoji 😀 code: def f(x): return x**2 {json: [1, 2]}").split()


def text_of(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def best(fn, repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    rng = random.Random(0)
    enc, _ = get_encoding("o200k_base")
    for words in (20, 2_000, 50_000):
        text = text_of(rng, words)
        reps = max(1, 20_000 // words)
        raw = best(lambda t=text, r=reps: [enc.encode(t, disallowed_special=()) for _ in range(r)])
        ours = best(lambda t=text, r=reps: [count_tokens(t, "gpt-4o") for _ in range(r)])
        n = len(enc.encode(text))
        print(f"text of {n:>6} tokens: raw encode {raw / reps * 1e6:9.1f} µs, count_tokens "
              f"{ours / reps * 1e6:9.1f} µs  (ratio {ours / raw:.2f})")

    msgs = [{"role": "system", "content": "You are a helpful assistant."}]
    for i in range(400):
        msgs.append({"role": "user" if i % 2 == 0 else "assistant", "content": text_of(rng, 190)})
    raw = best(lambda: [enc.encode(m["content"]) for m in msgs], 5)
    c = count_tokens(msgs, "gpt-4o")
    ours = best(lambda: count_tokens(msgs, "gpt-4o"), 5)
    print(f"chat, {len(msgs)} messages, {c.total:,} tokens: raw encode of contents "
          f"{raw * 1e3:.1f} ms, count_tokens with breakdown {ours * 1e3:.1f} ms "
          f"(ratio {ours / raw:.2f})")

    import gptmagic

    try:
        count_tokens("warm up", "local")
        t0 = time.perf_counter()
        local = count_tokens(msgs, "local")
        t1 = time.perf_counter()
        count_tokens(msgs, "local", breakdown=False)
        t2 = time.perf_counter()
        print(f"embedded model, same conversation ({local.total:,} of its tokens): "
              f"with breakdown {(t1 - t0) * 1e3:.0f} ms, total only {(t2 - t1) * 1e3:.0f} ms")
    finally:
        gptmagic.shutdown()


if __name__ == "__main__":
    main()
