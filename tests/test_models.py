"""Tests of gptmagic.catalog.models: context windows and output limits by model name."""

from __future__ import annotations

import pytest

from gptmagic.catalog import models
from gptmagic.catalog.models import ModelInfo, model_info, register_model
from gptmagic.errors import ConfigError
from gptmagic.local.model import ALIASES, CONTEXT_WINDOW

TABLE = "OpenAI model docs (gptmagic table, 2025)"




def test_all_lists_the_public_names() -> None:
    defined = {name for name, obj in vars(models).items() if not name.startswith("_")
               and getattr(obj, "__module__", None) == models.__name__}
    assert set(models.__all__) == defined
    assert all(getattr(models, name).__doc__ for name in defined)


@pytest.mark.parametrize(
    ("name", "context", "output"),
    [
        # families
        ("gpt-5", 400_000, 128_000),
        ("gpt-5-mini", 400_000, 128_000),
        ("gpt-5-nano", 400_000, 128_000),
        ("gpt-4.1", 1_047_576, 32_768),
        ("gpt-4o", 128_000, 16_384),
        ("gpt-4o-mini", 128_000, 16_384),
        ("o1", 200_000, 100_000),
        ("o1-mini", 128_000, 65_536),
        ("o3", 200_000, 100_000),
        ("o4-mini", 200_000, 100_000),
        ("gpt-4-turbo", 128_000, 4_096),
        ("gpt-4", 8_192, 8_192),
        ("gpt-4-32k", 32_768, 32_768),
        ("gpt-3.5-turbo", 16_385, 4_096),
        ("gpt-3.5-turbo-instruct", 4_096, 4_096),
        ("davinci-002", 16_384, 16_384),
        ("babbage-002", 16_384, 16_384),
        # dated snapshots map to their family, by the longest matching name
        ("gpt-5-2025-08-07", 400_000, 128_000),
        ("gpt-5-mini-2025-08-07", 400_000, 128_000),
        ("gpt-4.1-nano-2025-04-14", 1_047_576, 32_768),
        ("gpt-4o-2024-08-06", 128_000, 16_384),
        ("gpt-4o-2024-05-13", 128_000, 4_096),  # the first gpt-4o wrote at most 4k
        ("gpt-4o-mini-2024-07-18", 128_000, 16_384),
        ("o1-mini-2024-09-12", 128_000, 65_536),
        ("o3-mini-2025-01-31", 200_000, 100_000),
        ("gpt-4-turbo-2024-04-09", 128_000, 4_096),
        ("gpt-4-0613", 8_192, 8_192),
        ("gpt-4-32k-0613", 32_768, 32_768),
        ("gpt-3.5-turbo-0125", 16_385, 4_096),
        ("gpt-3.5-turbo-1106", 16_385, 4_096),
        ("gpt-3.5-turbo-0613", 4_096, 4_096),
        ("gpt-3.5-turbo-0301", 4_096, 4_096),
        ("gpt-3.5-turbo-16k-0613", 16_385, 16_385),
        ("gpt-3.5-turbo-instruct-0914", 4_096, 4_096),
        # tricky names: turbo previews that look like gpt-4, variants that look like gpt-4o
        ("gpt-4-0125-preview", 128_000, 4_096),
        ("gpt-4-1106-preview", 128_000, 4_096),
        ("gpt-4-1106-vision-preview", 128_000, 4_096),
        ("gpt-4-turbo-preview", 128_000, 4_096),
        ("gpt-4o-realtime-preview-2024-12-17", 32_000, 4_096),
        ("gpt-4o-mini-realtime-preview", 16_000, 4_096),
        ("gpt-5-chat-latest", 128_000, 16_384),
        # spellings of other services
        ("GPT-4o-Mini", 128_000, 16_384),
        ("gpt-35-turbo", 16_385, 4_096),
        ("openai/gpt-4o", 128_000, 16_384),
        ("ft:gpt-4o-mini-2024-07-18:my-org:custom:abc123", 128_000, 16_384),
    ],
)
def test_openai_table(name: str, context: int, output: int) -> None:
    assert model_info(name) == ModelInfo(name, context, output, TABLE)


@pytest.mark.parametrize(
    "name", ["gpt-4o-audio-preview", "gpt-4.1-mini", "gpt-4.5-preview", "gpt-40", "gpt-4oo"]
)
def test_gpt4_does_not_swallow_gpt4o_or_gpt41(name: str) -> None:
    info = model_info(name)
    assert (info.context_window, info.max_output_tokens) != (8_192, 8_192)


def test_prefix_needs_a_dash_boundary() -> None:
    assert models._family("gpt-4o-mini-2024-07-18") == "gpt-4o-mini"
    assert models._family("gpt-4.1-mini") == "gpt-4.1-mini"
    assert models._family("gpt-5.4") is None  # not gpt-5
    assert models._family("gpt-4o") == "gpt-4o"
    assert models._family("o3-mini-high") == "o3-mini"
    assert models._family("o30") is None


def test_models_outside_the_table_get_genai_prices_context_window() -> None:
    from genai_prices.data_snapshot import get_snapshot

    _, info = get_snapshot().find_provider_model("gpt-5.4", None, "openai", None)
    assert model_info("gpt-5.4") == ModelInfo("gpt-5.4", info.context_window, None,
                                               "genai-prices 0.2.3 (openai/gpt-5.4)")
    claude = model_info("claude-3-5-sonnet-latest")
    assert claude.context_window == 200_000 and claude.max_output_tokens is None


@pytest.mark.parametrize("name", sorted(ALIASES))
def test_local_model(name: str) -> None:
    info = model_info(name)
    assert (info.context_window, info.max_output_tokens) == (CONTEXT_WINDOW, 8192)
    assert info.source == "local model smollm2-135m-instruct"


@pytest.mark.parametrize("name", ["my-azure-deployment", "llama3", "", "gpt"])
def test_unknown(name: str) -> None:
    assert model_info(name) == ModelInfo(name, None, None, "unknown")


def test_register_model_wins() -> None:
    register_model("My-Deployment", context_window=128_000, max_output_tokens=4_000)
    register_model("gpt-4o", context_window=1000, max_output_tokens=None)
    assert model_info("my-deployment") == ModelInfo("my-deployment", 128_000, 4_000, "registered")
    assert model_info("gpt-4o") == ModelInfo("gpt-4o", 1000, None, "registered")
    assert model_info("gpt-4o-2024-08-06").context_window == 128_000  # exact names only


@pytest.mark.parametrize("bad", [0, -5, 1.5, "8k", True])
def test_register_model_checks_numbers(bad: object) -> None:
    with pytest.raises(ConfigError, match="context_window"):
        register_model("x", context_window=bad, max_output_tokens=None)  # type: ignore[arg-type]


def test_table_lookup_does_not_import_genai_prices() -> None:
    import subprocess
    import sys

    code = ("import sys; from gptmagic.catalog.models import model_info; "
            "model_info('gpt-4o-2024-08-06'); model_info('local'); "
            "assert 'genai_prices' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
