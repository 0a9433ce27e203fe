"""What is known about models without asking one: facts, prices, token counts.

Owns model facts (context windows, families: :mod:`.models`), the embedded
model's fixed facts (:mod:`.embedded`), prices and cost estimates from
genai-prices (:mod:`.pricing`), tiktoken counting with the chat-format rule
(:mod:`.tokens`) and fitting a conversation to a context window
(:mod:`.context`).

May import: :mod:`gptmagic.core`, :mod:`gptmagic.errors`, tiktoken and
genai-prices. No network, no client: counting on the embedded engine is a
client call (:meth:`gptmagic.client.Client.count_tokens`).
"""
