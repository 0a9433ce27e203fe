"""Default settings, in one place, with the reason for each."""

from __future__ import annotations

# Timeouts (seconds). Connecting to a healthy server takes milliseconds; 10 s
# covers a slow TLS handshake. A model may think for a long time before the
# first byte, so reads get 120 s. The overall deadline bounds a whole call
# (every attempt and every backoff wait), including a long stream that
# trickles forever: ten minutes is past any real generation, and the magics'
# --timeout sets a shorter one per cell.
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 120.0
WRITE_TIMEOUT = 30.0
POOL_TIMEOUT = 60.0
REQUEST_DEADLINE = 600.0

# Retries: 5 attempts and 90 s in all, whichever comes first. Backoff starts at
# 0.5 s and doubles to 8 s; jitter spreads clients that failed together.
# A Retry-After longer than 60 s is not waited out: the caller gets the error.
MAX_ATTEMPTS = 5
MAX_RETRY_TIME = 90.0
INITIAL_BACKOFF = 0.5
MAX_BACKOFF = 8.0
JITTER = 0.25
MAX_RETRY_AFTER = 60.0

# One pool for the whole program. 256 connections keeps the batch runner's
# default concurrency well inside the pool (DESIGN.md measured 0.73 of the
# ideal rate at C=256 with the aiohttp transport).
MAX_CONNECTIONS = 256
KEEPALIVE_EXPIRY = 30.0

# Models used when the user names none. The hosted default is chosen from data
# (gptmagic.catalog.lifecycle.cheapest_current, checked by a test): the cheapest
# OpenAI chat model that takes logprobs and temperature and has no announced
# shutdown, priced by genai-prices for 1,000 prompt + 256 completion tokens
# (2026-12-01: gpt-4.1-nano $0.0002024; gpt-4o-mini, retiring 2027-01-14, was the
# default before). A profile's default_model overrides it.
DEFAULT_OPENAI_MODEL = "gpt-4.1-nano"
LOCAL_MODEL = "smollm2-135m-instruct"

OPENAI_BASE_URL = "https://api.openai.com/v1"

# GET /models (its shutdown_date): asked in the background, never on a call's path;
# a list is kept a day per provider; a provider that does not answer in 5 s is
# unreachable, and that failure is remembered 10 minutes (then asked again), so a
# blip does not hide a provider's dates for a whole day.
MODELS_CACHE_TTL = 24 * 3600.0
MODELS_FAILURE_TTL = 10 * 60.0
MODELS_LIST_TIMEOUT = 5.0
AZURE_API_VERSION = "2024-10-21"

# Tool loops (gptmagic.chat(tools=[...]), %%chat --tools): at most 5 model calls. A
# model that answers in one or two tool rounds is the common case; one that is still
# calling after five is usually looping, and every round resends the whole exchange.
DEFAULT_MAX_STEPS = 5
