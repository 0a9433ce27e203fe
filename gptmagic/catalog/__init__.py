"""What is known about models without asking one: facts, prices, token counts.

Owns model facts (context windows, families: :mod:`.models`), the embedded
model's fixed facts (:mod:`.embedded`), prices and cost estimates from
genai-prices (:mod:`.pricing`; money types in :mod:`.money`, genai-prices'
arithmetic and the run memo in :mod:`.genai_cost`), OpenAI's shutdown dates
and the default hosted model's choice (:mod:`.lifecycle`), tiktoken counting
with the chat-format rule (:mod:`.tokens`) and fitting a conversation to a context window
(:mod:`.context`).

May import: :mod:`gptmagic.core`, :mod:`gptmagic.errors`, tiktoken and
genai-prices. No network, no client: counting on the embedded engine is a
client call (:meth:`gptmagic.client.Client.count_tokens`).
"""
