"""Ask the engine for the logprobs it drops, so every token has its entry.

:mod:`gptmagic.local.fragments` finds the logprob entries in which llama.cpp
merged the tokens of one character and rebuilds them; this module does the
engine calls that needs: the tokenization of each merged character, the
request's prompt ids, and, for each dropped token, the engine's distribution
at its position. That is one ``/completion`` of one token over the prompt and
the tokens generated before it (the engine's prompt cache makes it cheap),
forced to a plain token (a logit bias) so the engine reports the position at
all; the reported probabilities are the model's own, before any sampler, so
the bias does not change them.

Only replies with non-ASCII text and logprobs asked for pay anything; an
ASCII reply costs nothing here.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from gptmagic.local.fragments import (
    Piece,
    Scored,
    find_splits,
    generated_ids,
    partial_entry,
    rebuild,
    wants_split,
)
from gptmagic.local.verbatim import token_pieces

__all__ = ["Splitter"]

#: Alternatives asked for at a dropped token's position, then, if the token is
#: not among them (a sampler let an unlikely token through), this many.
_TOP_FIRST, _TOP_WIDE = 50, 1000

#: A token that is a whole character, forced at the scored position.
_PLAIN = "."

#: The model's end-of-text tokens (the chat template's end of turn, the document end).
_ENDS = ("<|im_end|>", "<|endoftext|>")

#: Chat request fields that change the rendered prompt.
_TEMPLATE_FIELDS = ("tools", "tool_choice", "parallel_tool_calls", "chat_template_kwargs",
                    "reasoning_format")


class Splitter:
    """Per-token logprob entries for one engine request (``body``) and its choices."""

    def __init__(self, session: aiohttp.ClientSession, engine_url: str, body: dict[str, Any],
                 top_n: int, memo: dict[str, Any]) -> None:
        self.session = session
        self.url = engine_url
        self.body = body
        self.top_n = top_n
        self.memo = memo  # facts kept for the app's life (the plain token's id)
        self.before: dict[int, list[int]] = {}  # choice index -> ids generated so far
        self.held: dict[int, list[Any]] = {}  # choice index -> entries not yet passed on
        self._prompt_ids: dict[int, list[int]] = {}

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        async with self.session.post(self.url + path, json=body) as resp:
            text = await resp.text()
            if resp.status != 200:
                raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status,
                                                  message=text[:200])
        return json.loads(text)

    async def _tokenize(self, text: str, special: bool) -> list[Piece]:
        answer = await self._post("/tokenize", {"content": text, "parse_special": special,
                                                "add_special": False, "with_pieces": True})
        ids, pieces = token_pieces(answer.get("tokens") or [])
        return [(token_id, piece.encode() if isinstance(piece, str) else bytes(piece))
                for token_id, piece in zip(ids, pieces, strict=True)]

    async def _plain_id(self) -> int:
        if "plain_token" not in self.memo:
            self.memo["plain_token"] = (await self._tokenize(_PLAIN, False))[0][0]
        return int(self.memo["plain_token"])

    async def _ids_of(self, text: str) -> list[int]:
        answer = await self._post("/tokenize", {"content": text, "parse_special": True,
                                                "add_special": True})
        return [int(t) for t in answer.get("tokens") or []]

    async def prompt_ids(self, index: int) -> list[int]:
        """The token ids the engine generated choice ``index`` after."""
        if index in self._prompt_ids:
            return self._prompt_ids[index]
        if "messages" in self.body:
            # What shapes the rendered prompt besides the messages goes along.
            shaping = {k: self.body[k] for k in _TEMPLATE_FIELDS if k in self.body}
            rendered = await self._post("/apply-template", {
                **shaping, "messages": self.body["messages"], "add_generation_prompt": True})
            ids = await self._ids_of(str(rendered["prompt"]))
        else:
            prompt = self.body.get("prompt")
            prompts = prompt if isinstance(prompt, list) and prompt and all(
                isinstance(p, str | list) for p in prompt) else [prompt]
            n = int(self.body.get("n") or 1)
            one = prompts[min(index // n, len(prompts) - 1)]
            ids = list(one) if isinstance(one, list) else await self._ids_of(str(one or ""))
        self._prompt_ids[index] = ids
        return ids

    async def _top(self, prefix: list[int], count: int) -> list[dict[str, Any]]:
        """The model's ``count`` likeliest next tokens after ``prefix``, likeliest first."""
        answer = await self._post("/completion", {
            "prompt": prefix, "n_predict": 1, "n_probs": count, "temperature": 0,
            "logit_bias": [[await self._plain_id(), 100]], "cache_prompt": True,
            "stream": False})
        probs = answer.get("completion_probabilities") or []
        top = probs[0].get("top_logprobs") or [] if probs else []
        return [alt for alt in top if isinstance(alt, dict)]

    async def _score(self, prefix: list[int], token_id: int) -> Scored | None:
        for count in (_TOP_FIRST, _TOP_WIDE):
            alternatives = await self._top(prefix, max(count, self.top_n))
            for alt in alternatives:
                if alt.get("id") == token_id:
                    return Scored(float(alt["logprob"]), alternatives[: self.top_n])
        return None

    def _greedy(self) -> bool:
        """True when each token was the model's likeliest (so it can be found again)."""
        body = self.body
        return body.get("temperature") == 0 and not body.get("logit_bias") and not any(
            body.get(k) for k in ("presence_penalty", "frequency_penalty", "response_format",
                                  "grammar", "json_schema")) and \
            body.get("repeat_penalty") in (None, 1, 1.0)

    async def trailing(self, index: int) -> list[dict[str, Any]]:
        """Entries for the tokens of a character cut off by ``max_tokens``.

        The engine sends neither the text nor the logprobs of tokens that end
        a reply in the middle of a character. When the reply stopped at
        ``max_tokens`` with fewer tokens seen, the missing ones were that
        unfinished character's. Their ids are known again only when decoding
        was greedy (each token the likeliest); otherwise nothing is added.
        """
        limit = self.body.get("max_tokens")
        before = self.before.setdefault(index, [])
        missing = (limit - len(before)) if isinstance(limit, int) else 0
        if not 0 < missing <= 3 or not self._greedy():  # a character is at most 4 bytes
            return []
        prompt = await self.prompt_ids(index)
        out = []
        for _ in range(missing):
            top = await self._top(prompt + before, max(self.top_n, 1))
            if not top or not isinstance(top[0].get("id"), int):
                break
            best = top[0]
            raw = bytes(best.get("bytes") or [])
            if wants_split({"id": best["id"], "bytes": list(raw)}) is not None or raw.isascii():
                break  # a whole character: the engine would have sent it
            out.append(partial_entry(int(best["id"]), raw, float(best["logprob"]),
                                     top[: self.top_n]))
            before.append(int(best["id"]))
        return out

    async def entries(self, index: int, entries: list[Any]) -> list[Any]:
        """Choice ``index``'s next ``entries``, one per token (merged ones rebuilt)."""
        before = self.before.setdefault(index, [])
        texts = {text for e in entries if (text := wants_split(e))}
        splits = []
        if texts:
            pieces = {text: await self._tokenize(text, False) for text in texts}
            splits = find_splits(entries, pieces)
        ids = generated_ids(entries, splits)
        if splits:
            prompt = await self.prompt_ids(index)
            scores = {}
            for split in splits:
                position = len(generated_ids(entries[: split.index], splits))
                for k, (token_id, _) in enumerate(split.dropped):
                    prefix = prompt + before + ids[: position + k]
                    scored = await self._score(prefix, token_id)
                    if scored is not None:
                        scores[(split.index, k)] = scored
            entries = rebuild(entries, splits, scores)
        before.extend(ids)
        return entries

    async def end_token(self, index: int) -> list[dict[str, Any]]:
        """The entry of the end-of-text token that ended choice ``index``.

        It has no text (``bytes: []``); the stream leaves its entry out. Among
        the likeliest tokens at that position it is the likeliest of the
        model's end tokens (sampling picks only among the likeliest).
        """
        before = self.before.setdefault(index, [])
        ends = await self._end_ids()
        if before and before[-1] in ends:
            return []  # the engine sent this one (it does when nothing came before it)
        prompt = await self.prompt_ids(index)
        top = await self._top(prompt + before, max(self.top_n, _TOP_FIRST))
        for alt in top:
            if alt.get("id") in ends:
                before.append(int(alt["id"]))
                return [partial_entry(int(alt["id"]), b"", float(alt["logprob"]),
                                      top[: self.top_n])]
        return []

    async def _end_ids(self) -> set[int]:
        if "end_tokens" not in self.memo:
            ids = set()
            for text in _ENDS:
                pieces = await self._tokenize(text, True)
                if len(pieces) == 1:
                    ids.add(pieces[0][0])
            self.memo["end_tokens"] = ids
        return set(self.memo["end_tokens"])

    async def choice(self, choice: Any) -> None:
        """Rebuild a choice's ``logprobs.content`` in place (chat or legacy engine shape).

        At its finish, the entries the engine's stream leaves out are added: the
        end-of-text token of a reply that stopped by itself (the engine counts it
        in ``completion_tokens``) and a character cut off by ``max_tokens``.
        """
        if not isinstance(choice, dict):
            return
        index = int(choice.get("index") or 0)
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
            logprobs["content"] = await self.entries(index, logprobs["content"])
        finish = choice.get("finish_reason")
        extra: list[dict[str, Any]] = []
        if finish == "length":
            extra = await self.trailing(index)
        elif finish == "stop" and not self.body.get("stop"):
            extra = await self.end_token(index)
        if extra:
            if not isinstance(logprobs, dict) or not isinstance(logprobs.get("content"), list):
                logprobs = choice["logprobs"] = {"content": []}
            logprobs["content"].extend(extra)

    async def stream(self, chunk: Any) -> list[Any]:
        """The chunks to pass on for one engine stream chunk (it, maybe a logprobs chunk first).

        Entries are rebuilt only when a choice has ended, so the stream's text is
        never held up: the rebuilding asks the engine about positions of this very
        request, which is fast once its slot is free and holds the whole prefix
        (during the generation it would wait for another slot and process the
        prompt again). So from a choice's first non-ASCII entry on, its text goes
        on at once and its entries follow, in order, in one chunk just before
        the chunk that ends the choice. An ASCII reply's entries are not held.
        """
        if not isinstance(chunk, dict):
            return [chunk]
        first: list[Any] = []
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            index = int(choice.get("index") or 0)
            logprobs = choice.get("logprobs")
            content = logprobs.get("content") if isinstance(logprobs, dict) else None
            if isinstance(content, list) and content:
                if index in self.held or any(wants_split(e) for e in content):
                    self.held.setdefault(index, []).extend(content)
                    choice["logprobs"] = None
                else:
                    self.before.setdefault(index, []).extend(
                        int(e["id"]) for e in content if isinstance(e, dict) and "id" in e)
            if choice.get("finish_reason") is not None:
                late: dict[str, Any] = {
                    "index": index, "logprobs": {"content": self.held.pop(index, [])},
                    "finish_reason": choice["finish_reason"]}
                await self.choice(late)  # rebuilt, and the entries a finish adds
                late["finish_reason"] = None
                if late["logprobs"]["content"]:
                    if "delta" in choice:
                        late["delta"] = {}
                    else:
                        late["text"] = ""
                    first.append({**{k: v for k, v in chunk.items() if k != "usage"},
                                  "choices": [late]})
        return [*first, chunk]

    async def chunk(self, chunk: Any) -> Any:
        """An engine stream chunk (or whole answer) with its choices' entries rebuilt."""
        if isinstance(chunk, dict):
            for choice in chunk.get("choices") or []:
                await self.choice(choice)
        return chunk
