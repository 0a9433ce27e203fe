"""Providers, named profiles and API keys.

A :class:`Provider` says where requests go and how they authenticate:

- ``openai``: ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``OPENAI_ORG_ID`` /
  ``OPENAI_PROJECT_ID`` headers;
- ``azure``: Azure OpenAI deployment URLs
  (``{endpoint}/openai/deployments/{model}/...?api-version=``); the Responses,
  Files and Batch APIs at Azure's v1 path (``{endpoint}/openai/v1/responses``,
  no api-version, the deployment named by ``model`` in the body); ``api-key`` header;
  ``AZURE_OPENAI_ENDPOINT``, ``AZURE_OPENAI_API_KEY``, ``OPENAI_API_VERSION``;
- ``compatible``: any OpenAI-compatible ``base_url`` (vLLM, Ollama, llama.cpp,
  LM Studio), key optional;
- ``local``: the embedded model, started on first use.

Profiles are named providers defined once, in code (:func:`add_profile`) or in
``~/.config/gptmagic/config.toml`` (or ``$GPTMAGIC_CONFIG``)::

    default_profile = "work"
    [profiles.work]
    kind = "azure"
    base_url = "https://my-resource.openai.azure.com"
    api_key_env = "WORK_AZURE_KEY"
    default_model = "gpt-4o"
    api = "responses"   # %%chat sends to /responses unless a cell says --api chat
    batch_deployments = { "gpt-4o" = "gpt-4o-batch" }  # evaluate(batch=True) sends there

A profile names the *environment variable* holding its key, never the key.
With ``prompt_key = true`` a missing key is asked for with getpass and kept in
memory only. With no profile chosen and no ``OPENAI_API_KEY``, the default is
the embedded local model, said once in a short notice.

A model may name its profile: ``"vllm:llama3:8b"`` is model ``llama3:8b`` on
profile ``vllm`` (:func:`split_model`). Only a part before the first ``:``
that names a known profile splits, so ``llama3:8b`` and fine-tune ids such as
``ft:gpt-4o-mini:org::id`` keep their colons.
"""

from __future__ import annotations

import difflib
import getpass
import os
import sys
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from gptmagic.catalog.embedded import EMBEDDED_MODELS, SMOLLM2, claims, is_local_model
from gptmagic.core import defaults as D
from gptmagic.core.headers import Headers
from gptmagic.core.to_responses import APIS
from gptmagic.errors import ConfigError, register_secret
from gptmagic.state import current

__all__ = [
    "APIS",
    "Provider",
    "add_profile",
    "ask_key",
    "config_path",
    "get_profile",
    "load_config",
    "model_name",
    "profiles",
    "resolve",
    "split_model",
]

KINDS = ("openai", "azure", "compatible", "local")



@dataclass(frozen=True, slots=True)
class Provider:
    """Where requests go and how they authenticate. Holds no secret."""

    name: str
    kind: str = "compatible"
    base_url: str | None = None
    api_key_env: str | None = None
    api_version: str | None = None
    organization: str | None = None
    project: str | None = None
    default_model: str | None = None
    headers: tuple[tuple[str, str], ...] = field(default=())
    prompt_key: bool = False
    #: The endpoint ``%%chat`` uses with this profile when a cell names none
    #: (``"chat"`` or ``"responses"``); None leaves it to the magics' setting.
    api: str | None = None
    #: Model (deployment) -> the deployment a Batch API batch names instead: Azure
    #: OpenAI runs batches only on Global Batch deployments, so ``evaluate(...,
    #: batch=True)`` of ``"gpt-4o"`` sends its lines to ``"gpt-4o-batch"``.
    batch_deployments: tuple[tuple[str, str], ...] = field(default=())
    #: Whether ``%%chat`` / ``%%complete`` calls to this profile go in the call log
    #: (:mod:`gptmagic.eval.calllog`): ``log = false`` keeps a confidential provider's
    #: prompts and replies out of the cache file while the rest are logged.
    log: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(
                f"profile {self.name!r}: kind {self.kind!r} is not one of {', '.join(KINDS)}"
            )
        if self.api is not None and self.api not in APIS:
            raise ConfigError(
                f"profile {self.name!r}: api {self.api!r} is not one of {', '.join(APIS)}"
            )
        if not isinstance(self.log, bool):
            raise ConfigError(f"profile {self.name!r}: log must be true or false, got "
                              f"{self.log!r}")
        for k, _ in self.headers:
            if k.lower() in ("authorization", "api-key"):
                raise ConfigError(
                    f"profile {self.name!r}: put the key in an environment variable "
                    f"(api_key_env), not in header {k!r}"
                )

    def batch_model(self, model: str) -> str:
        """The model (deployment) a Batch API line names for ``model``
        (:attr:`batch_deployments`, else ``model`` itself)."""
        return dict(self.batch_deployments).get(model, model)

    def api_key(self, *, prompt: bool = True) -> str | None:
        """The key from ``api_key_env`` (or a getpass prompt); None if not needed.

        ``prompt=False`` never asks: the request path runs on the background
        loop, where a prompt would stall every request in flight, so keys are
        asked for on the caller's thread (:func:`ask_key`) before a request
        is scheduled.
        """
        if self.kind == "local":
            return None
        env = self.api_key_env
        key = os.environ.get(env) if env else None
        if not key:
            key = current().prompted_keys.get(self.name)
        if not key and self.prompt_key:
            if not prompt:
                raise ConfigError(
                    f"profile {self.name!r} asks for its key (prompt_key), which is never done "
                    f"inside a request: enter it first with "
                    f"gptmagic.get_profile({self.name!r}).api_key()"
                    + (f", or set {env}" if env else "")
                )
            key = getpass.getpass(f"API key for gptmagic profile {self.name!r}: ").strip()
            if key:
                current().prompted_keys[self.name] = key
        if key:
            register_secret(key)
            return key
        if self.kind in ("openai", "azure"):
            where = f"environment variable {env}" if env else "an api_key_env setting"
            raise ConfigError(
                f"profile {self.name!r} ({self.kind}) needs an API key: set {where}, "
                f"or use model 'local' for the embedded model"
            )
        return None

    def auth_headers(self, *, prompt: bool = True) -> Headers:
        """Headers to send, including the key, in a mapping whose repr hides it."""
        h = dict(self.headers)
        key = self.api_key(prompt=prompt)
        if key:
            if self.kind == "azure":
                h["api-key"] = key
            else:
                h["Authorization"] = f"Bearer {key}"
        if self.organization:
            h["OpenAI-Organization"] = self.organization
        if self.project:
            h["OpenAI-Project"] = self.project
        return Headers(h)

    def endpoint(
        self, path: str, model: str, base_url: str | None = None
    ) -> tuple[str, dict[str, str]]:
        """URL and query parameters for ``path`` ("chat/completions", "completions", "models",
        "responses", "responses/input_tokens", "moderations", "files...", "batches...")."""
        base = (base_url or self.base_url or "").rstrip("/")
        if not base:
            raise ConfigError(f"profile {self.name!r} has no base_url")
        if self.kind == "azure" and self.api_version:
            root = base.split("/openai")[0]
            if path == "models":
                return f"{root}/openai/models", {"api-version": self.api_version}
            if path.split("/")[0] in ("responses", "files", "batches"):
                # Azure's GA Responses API is on its v1 path: no api-version (the
                # profile's dates name the deployments API), no deployment in the
                # path (the body's model names the deployment).
                return f"{root}/openai/v1/{path}", {}
            return (
                f"{root}/openai/deployments/{quote(model, safe='')}/{path}",
                {"api-version": self.api_version},
            )
        return f"{base}/{path}", {}

    def __repr__(self) -> str:
        return f"Provider(name={self.name!r}, kind={self.kind!r}, base_url={self.base_url!r})"


def _builtin() -> dict[str, Provider]:
    env = os.environ
    return {
        "openai": Provider(
            name="openai",
            kind="openai",
            base_url=env.get("OPENAI_BASE_URL") or D.OPENAI_BASE_URL,
            api_key_env="OPENAI_API_KEY",
            organization=env.get("OPENAI_ORG_ID") or None,
            project=env.get("OPENAI_PROJECT_ID") or None,
            default_model=D.DEFAULT_OPENAI_MODEL,
        ),
        "azure": Provider(
            name="azure",
            kind="azure",
            base_url=env.get("AZURE_OPENAI_ENDPOINT") or None,
            api_key_env="AZURE_OPENAI_API_KEY",
            api_version=env.get("OPENAI_API_VERSION") or D.AZURE_API_VERSION,
        ),
        "local": Provider(name="local", kind="local", default_model=D.LOCAL_MODEL),
    }


def config_path() -> Path:
    """Where the config file is read from."""
    if os.environ.get("GPTMAGIC_CONFIG"):
        return Path(os.environ["GPTMAGIC_CONFIG"])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(base) / "gptmagic" / "config.toml"


#: Settings that would hold a key itself, refused with the way to give one.
_KEY_SETTINGS = ("api_key", "key", "token")

_PROFILE_KEYS = {
    "kind",
    "base_url",
    "api_key_env",
    "api_version",
    "organization",
    "project",
    "default_model",
    "headers",
    "prompt_key",
    "api",
    "batch_deployments",
    "log",
}


def load_config(path: Path | None = None) -> dict[str, Any]:
    """Parse the config file (``{}`` if absent); errors name the file and key."""
    p = path or config_path()
    try:
        mtime = p.stat().st_mtime
    except FileNotFoundError:
        return {}
    cached = current().config_file
    if path is None and cached and cached[0] == mtime:
        return cached[1]
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot read: {e.strerror}") from None
    profs = data.get("profiles", {})
    if not isinstance(profs, dict):
        raise ConfigError(f"{p}: 'profiles' must be a table")
    for name, spec in profs.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"{p}: [profiles.{name}] must be a table")
        unknown = set(spec) - _PROFILE_KEYS
        if unknown:
            raise ConfigError(
                f"{p}: [profiles.{name}] has unknown key(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(_PROFILE_KEYS))}"
            )
        for key in _KEY_SETTINGS:
            if key in spec:
                raise ConfigError(f"{p}: [profiles.{name}] must not hold a key; use api_key_env")
    if path is None:
        current().config_file = (mtime, data)
    return data


def _from_spec(name: str, spec: dict[str, Any], source: str) -> Provider:
    try:
        headers = tuple((str(k), str(v)) for k, v in dict(spec.get("headers") or {}).items())
        batch = tuple((str(k), str(v))
                      for k, v in dict(spec.get("batch_deployments") or {}).items())
        return Provider(
            name=name,
            kind=str(spec.get("kind", "compatible")),
            base_url=spec.get("base_url"),
            api_key_env=spec.get("api_key_env"),
            api_version=spec.get("api_version"),
            organization=spec.get("organization"),
            project=spec.get("project"),
            default_model=spec.get("default_model"),
            headers=headers,
            prompt_key=bool(spec.get("prompt_key", False)),
            api=spec.get("api"),
            batch_deployments=batch,
            log=spec.get("log", True),
        )
    except (TypeError, ValueError, ConfigError) as e:
        raise ConfigError(f"{source}: {e}") from None


def add_profile(name: str, **settings: Any) -> Provider:
    """Define (or replace) a named profile for this session; returns it.

    A profile never holds a key: ``api_key_env`` names the environment variable
    that does, and ``prompt_key=True`` asks for it with getpass when it is unset."""
    unknown = set(settings) - _PROFILE_KEYS
    if unknown:
        keys = sorted(k for k in unknown if k in _KEY_SETTINGS)
        for k in keys:  # the value must not reach a traceback's locals (%xmode Verbose)
            if isinstance(settings[k], str):
                register_secret(settings[k])
            settings[k] = "[REDACTED]"
        known = f"known settings: {', '.join(sorted(_PROFILE_KEYS))}"
        if keys:
            raise ConfigError(
                f"add_profile({name!r}): {', '.join(keys)} is not a setting: a profile never "
                f"holds a key. Put the key in an environment variable and name it with "
                f"api_key_env='MY_KEY_VAR', or pass prompt_key=True to be asked for it "
                f"(kept in memory only); {known}")
        raise ConfigError(f"add_profile({name!r}): unknown setting(s) "
                          f"{', '.join(sorted(unknown))}; {known}")
    prof = _from_spec(name, settings, "add_profile")
    state = current()
    with state.lock:
        state.user_profiles[name] = prof
    return prof


def profiles() -> dict[str, Provider]:
    """All known profiles: built-in, then the config file, then :func:`add_profile`."""
    out = _builtin()
    src = str(config_path())
    for name, spec in load_config().get("profiles", {}).items():
        base = out.get(name)
        prof = _from_spec(name, spec, src)
        out[name] = replace(base, **{k: getattr(prof, k) for k in spec}) if base else prof
    state = current()
    with state.lock:
        out.update(state.user_profiles)
    return out


def get_profile(name: str) -> Provider:
    """The profile called ``name`` or a ConfigError listing the known ones."""
    profs = profiles()
    if name not in profs:
        raise ConfigError(f"unknown profile {name!r}; known profiles: {', '.join(sorted(profs))}")
    return profs[name]


def _notice(text: str) -> None:
    state = current()
    if not state.notice_given:
        state.notice_given = True
        print(f"gptmagic: {text}", file=sys.stderr)


def split_model(spec: str) -> tuple[Provider | None, str]:
    """Read ``"profile:model"``: ``(the profile, the model)`` when the part before the
    first ``:`` names a known profile (:func:`profiles`), else ``(None, spec)``.

    The one place such names are parsed. Model names may hold colons of their
    own (``llama3:8b``, ``ft:gpt-4o-mini:org::id``): they split only on a
    profile's name. ``"vllm:"`` alone is the profile's ``default_model``.
    """
    prefix, colon, rest = spec.partition(":")
    if not colon:
        return None, spec
    prov = profiles().get(prefix)
    if prov is None:
        return None, spec
    if not rest:
        if not prov.default_model:
            raise ConfigError(f"model {spec!r} names profile {prefix!r} but no model, and the "
                              "profile has no default_model; write it as 'profile:model'")
        rest = prov.default_model
    return prov, rest


def model_name(model: str | None = None) -> str:
    """The model ``model`` names, its profile prefix read off; the default one if None.

    For counting and pricing, where no request is sent and so no provider is chosen.
    """
    return split_model(model)[1] if model else resolve()[1]


def resolve(
    provider: str | Provider | None = None,
    model: str | None = None,
    *,
    default: str | Provider | None = None,
) -> tuple[Provider, str]:
    """Choose the provider and model for a call.

    Order: an explicit ``provider`` (the model name is then taken whole);
    a ``"profile:model"`` name (:func:`split_model`); ``default`` (a client's
    or a notebook's profile); a name only the embedded models use
    (:func:`~gptmagic.catalog.embedded.claims`); the config file's
    ``default_profile`` or ``$GPTMAGIC_PROFILE``; OpenAI when
    ``OPENAI_API_KEY`` is set; else the embedded local model.

    A name whose prefix is no known profile is a model name; should it reach
    the embedded model, which could not serve it, it is an error naming the
    prefix and the known profiles, never a call to the wrong model.
    """
    if isinstance(provider, Provider):
        prov = provider
    elif provider:
        prov = get_profile(provider)
    else:
        named, model = split_model(model) if model else (None, model)
        if named is not None:
            prov = named
        elif isinstance(default, Provider):
            prov = default
        elif default:
            prov = get_profile(default)
        elif model and claims(model):
            prov = get_profile("local")
        else:
            prov = _fallback(model)
        if named is None and prov.kind == "local" and model:
            _refuse_unknown_prefix(model)
    chosen = model or prov.default_model
    if not chosen:
        raise ConfigError(
            f"no model given and profile {prov.name!r} has no default_model; pass model=..."
        )
    if prov.kind == "local" and chosen.lower() == "local":
        chosen = D.LOCAL_MODEL
    return prov, chosen


def _fallback(model: str | None) -> Provider:
    default = os.environ.get("GPTMAGIC_PROFILE") or load_config().get("default_profile")
    if default:
        return get_profile(str(default))
    if os.environ.get("OPENAI_API_KEY"):
        return get_profile("openai")
    if not model:
        _notice(
            "no API key configured; using the embedded local model "
            f"{D.LOCAL_MODEL} (set OPENAI_API_KEY or a profile to use a hosted model)"
        )
    return get_profile("local")


def _refuse_unknown_prefix(model: str) -> None:
    """``"myprofile:m"`` with no profile ``myprofile`` must not become a call to the
    embedded model (which serves one model): say which profile is unknown."""
    prefix, colon, _ = model.partition(":")
    if not colon or is_local_model(model) or model.endswith(".gguf"):
        return
    known = ", ".join(sorted(profiles()))
    raise ConfigError(
        f"model {model!r}: unknown profile {prefix!r}; known profiles: {known}. Read whole, "
        f"the name would go to the embedded model, which serves only {D.LOCAL_MODEL!r} "
        f"('local') and 'gemma-3-270m' ('local:gemma-3-270m'). Define the profile (in "
        f"{config_path()} or with gptmagic.add_profile), "
        f"name a known one ('openai:{D.DEFAULT_OPENAI_MODEL}'), or pass provider=...")


def refuse_misrouted(prov: Provider, model: str, spec: str, *, named: bool) -> None:
    """A hosted model name that resolved to the embedded model is an error, said up front.

    The embedded engine serves its own models only, so every such call would be a 404 (and
    an estimate would price a hosted model at $0). ``named``: the provider was
    chosen by the caller (a profile, ``-p``), not fallen back to.
    """
    if prov.kind != "local" or is_local_model(model) or model.endswith(".gguf"):
        return
    served = (f"which serves only {D.LOCAL_MODEL!r} ('local') and 'gemma-3-270m' "
              f"('local:gemma-3-270m')")
    meant = closest_local(model)
    if named and meant is not None:  # a typo of a served model, under the local profile
        raise ConfigError(f"model {spec!r}: profile {prov.name!r} is the embedded model, "
                          f"{served}; did you mean {meant!r}?")
    why = (f"profile {prov.name!r} is the embedded model" if named else
           "no hosted provider is configured (no OPENAI_API_KEY, no default profile), so it "
           "would go to the embedded model; nothing was sent")
    also = f" Or did you mean {meant!r}?" if meant is not None else ""
    raise ConfigError(
        f"model {spec!r}: {why}, {served}. Name the "
        f"provider ('openai:{model}', a profile, provider=...) or set OPENAI_API_KEY.{also}")


def closest_local(name: str) -> str | None:
    """The embedded model a mistyped ``name`` most likely meant, as a call names it
    (``'local'``, ``'local:gemma-3-270m'``), or None when no id or alias is close."""
    names = {alias.lower(): m for m in EMBEDDED_MODELS for alias in (m.id, *m.aliases)}
    found = difflib.get_close_matches(name.lower(), list(names), n=1, cutoff=0.6)
    if not found:
        return None
    model = names[found[0]]
    return "local" if model is SMOLLM2 else f"local:{model.id}"


def ask_key(provider: str | Provider | None = None, model: str | None = None, *,
            prompt: bool = True, default: str | Provider | None = None) -> Provider:
    """Resolve the provider of a call and make sure its key is at hand; returns it.

    Call on the caller's thread before a request is scheduled on the
    background loop: a ``prompt_key`` profile asks (getpass) here, once.
    ``prompt=False`` (on the loop's own thread) raises instead of asking.
    """
    prov, _ = resolve(provider, model, default=default)
    prov.api_key(prompt=prompt)
    return prov
