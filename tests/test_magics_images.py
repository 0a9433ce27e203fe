"""``%%chat`` cells with images, in-process against the fake server (which checks each image
part against OpenAI's spec and echoes what it decoded): over chat and the Responses API,
streamed and not; the dry run's thumbnails and elided body; history; the embedded
model's refusal; ``--detail``; ``--exact-count``; no base64 in anything shown or stored."""

from __future__ import annotations

import base64
import io
import json
import sqlite3
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output
from openapi_schema import validate
from PIL import Image
from shell_support import chat, fake_shell

import gptmagic
from gptmagic.core.types import Result
from gptmagic.errors import RequestError
from gptmagic.eval.store import Store
from gptmagic.notebook.session import DryRun, Reply

KEY = "sk-fake-images-0123456789abcdef"
CELL = "system: Be brief.\nuser: What is this?\n![a red cat](cat.png){detail=low}"
WRITTEN = "![a red cat](cat.png){detail=low}"


def picture(path: Path, size: tuple[int, int] = (64, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, "red").save(buf, "PNG")
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), "blue").save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def raw(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths start at the notebook's working directory
    return picture(tmp_path / "cat.png")


@pytest.fixture
def shell(fake_server, monkeypatch, tmp_path, raw):
    with fake_shell(fake_server.url, monkeypatch, tmp_path, KEY) as sh:
        yield sh


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def no_base64(raw: bytes, *texts: str) -> None:
    """None of ``texts`` holds the image's base64 (or a recognisable piece of it)."""
    piece = b64(raw)[20:60]
    for t in texts:
        assert piece not in t


def bundle_texts(bundle) -> list[str]:
    data, meta = bundle
    return [*(str(v) for v in data.values()), json.dumps(meta)]


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("api", ["chat", "responses"])
def test_an_image_is_sent_as_a_content_part_the_spec_accepts(shell, fake_server, raw, api,
                                                             stream):
    line = f"-p fake --api {api}" + ("" if stream else " --no-stream")
    r, cap = chat(shell, line, CELL)
    (req,) = fake_server.requests
    body = req.json
    if api == "chat":
        assert req.path == "/v1/chat/completions"
        validate(body, "CreateChatCompletionRequest")
        text, part = body["messages"][1]["content"]
        assert text == {"type": "text", "text": "What is this?\n"}
        validate(part, "ChatCompletionRequestMessageContentPartImage")
        url, detail = part["image_url"]["url"], part["image_url"]["detail"]
    else:
        assert req.path == "/v1/responses" and body["instructions"] == "Be brief."
        validate(body["input"][0], "EasyInputMessage")
        text, part = body["input"][0]["content"]
        assert text == {"type": "input_text", "text": "What is this?\n"}
        validate(part, "InputImageContent")
        url, detail = part["image_url"], part["detail"]
    assert detail == "low" and url == f"data:image/png;base64,{b64(raw)}"
    assert isinstance(r, Reply)
    # The server decoded the image it was sent: its echo says what it saw.
    assert r.text.startswith("echo: What is this?") and r.text.endswith("[image 64x32 PNG]")
    assert r.usage.prompt_tokens >= 85  # the fake server counts an image as 85 tokens
    no_base64(raw, cap.stdout, cap.stderr, repr(r), *bundle_texts(r.bundle), r.footer or "")


def test_the_thread_keeps_the_image_and_history_shows_its_thumbnail(shell, fake_server, raw):
    chat(shell, "-p fake --no-stream", CELL)
    chat(shell, "-p fake --no-stream", "user: And its colour?")
    second = fake_server.requests[-1].json["messages"]
    assert second[1]["content"][1]["image_url"]["url"] == f"data:image/png;base64,{b64(raw)}"
    assert second[-1] == {"role": "user", "content": "And its colour?"}
    shell.kernel = object()  # rich output, as in a notebook
    with capture_output() as cap:
        shell.run_line_magic("chat", "history")
    (out,) = cap.outputs
    html, plain = out.data["text/html"], out.data["text/plain"]
    assert html.count("<img ") == 1 and 'alt="a red cat"' in html
    assert "cat.png (line 3)" in html and "64×32" in html and "detail low" in html
    assert "What is this? [image]" in plain and "[image: a red cat · cat.png (line 3)" in plain
    no_base64(raw, plain, out.data["text/markdown"], repr(magic_session(shell).threads.get()))
    thumb = html.split('<img src="', 1)[1].split('"', 1)[0]
    with Image.open(io.BytesIO(base64.b64decode(thumb.split(",", 1)[1]))) as img:
        assert img.size == (64, 32) and img.getpixel((10, 10))[:3] == (255, 0, 0)


def magic_session(sh):
    return sh.magics_manager.registry["GptMagics"].session


def test_the_dry_run_elides_the_base64_counts_the_image_and_shows_a_thumbnail(
        shell, fake_server, raw):
    r, cap = chat(shell, "-m openai:gpt-4o --dry-run", CELL)
    assert isinstance(r, DryRun) and fake_server.requests == []
    assert r.request["messages"][1]["content"][1]["image_url"]["url"].endswith(b64(raw))
    data, meta = r._repr_mimebundle_()
    kb = max(len(raw) // 1000, 1)
    assert f'"url": "data:image/png;base64,… ({kb} KB)"' in data["text/plain"]
    assert data["text/html"].count("<img ") == 1 and 'alt="a red cat"' in data["text/html"]
    # The count holds the image by OpenAI's rule (low detail: gpt-4o's 85 base tokens).
    plain = gptmagic.count_tokens([{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": "What is this?\n"}],
                                  model="gpt-4o")
    assert r.count.total == plain.total + 85 and not r.count.exact
    assert "images estimated with gpt-4o's tile rule" in data["text/plain"]
    no_base64(raw, *bundle_texts((data, meta)), repr(r), cap.stdout)


@pytest.mark.parametrize(("line", "cell", "details"), [
    ("--detail high", "user: ![a](cat.png) ![b](cat.png){detail=low}", ["high", "low"]),
    ("", "user: ![a](cat.png)", [None]),
])
def test_detail_option_is_the_default_an_image_overrides(shell, fake_server, line, cell,
                                                         details):
    r, _ = chat(shell, f"-p fake --dry-run {line}", cell)
    parts = [p["image_url"] for p in r.request["messages"][0]["content"]]
    assert [p.get("detail") for p in parts] == details
    with pytest.raises(UsageError, match="--detail must be one of low, high, auto"):
        chat(shell, "-p fake --detail medium", cell)


@pytest.fixture
def engine_started(monkeypatch):
    """No embedded engine in this process's state (an earlier test may have left one);
    the test then checks none was started. The old one is put back after."""
    from gptmagic import state

    monkeypatch.setattr(state.current(), "engine", None)
    return lambda: state.current().engine is not None


def test_the_embedded_model_refuses_an_image_naming_its_line(shell, fake_server, engine_started):
    with pytest.raises(UsageError) as e:
        chat(shell, "-m local", CELL)
    assert str(e.value) == (f"cell line 3: image `{WRITTEN}`: SmolLM2 (the embedded model) reads "
                            "text only; send it to a vision model (--model gpt-4.1-nano) or "
                            "remove the image")
    with pytest.raises(UsageError, match="^cell line 3: image .*reads text only"):
        chat(shell, "-m local --dry-run", CELL)
    with pytest.raises(UsageError, match="^cell line 3: image .*reads text only"):
        chat(shell, "-m fake:fake-model,local", CELL)
    # Images in the thread's earlier turns are refused too, saying where they are.
    chat(shell, "-p fake --no-stream", CELL)
    with pytest.raises(UsageError) as e:
        chat(shell, "-m local", "user: and now?")
    assert "messages[1].content[1] is an image" in str(e.value)
    assert "thread 'default' holds them from an earlier turn" in str(e.value)
    assert "--no-history" in str(e.value)
    assert len(fake_server.requests) == 1  # only the one the fake server was asked
    assert not engine_started()  # never started for a prompt it cannot read


def test_the_python_api_refuses_images_for_the_embedded_model_before_sending(raw, engine_started):
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(raw)}"}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "what?"}, image]}]
    with pytest.raises(RequestError) as e:
        gptmagic.chat(messages, model="local")
    said = str(e.value)
    assert said == ("messages[0].content[1] is an image: SmolLM2 (the embedded model) reads text "
                    "only; send it to a vision model (model='gpt-4.1-nano') or remove the image")
    with pytest.raises(RequestError, match=r"input\[0\].content\[1\]|messages\[0\]"):
        gptmagic.respond(messages, model="local")
    assert not engine_started()


def test_a_missing_file_is_an_error_naming_image_line_and_folder(shell, fake_server, tmp_path):
    with pytest.raises(UsageError) as e:
        chat(shell, "-p fake", "user: hi\nsee ![x](nope.png)")
    assert str(e.value) == (f"cell line 2: image `![x](nope.png)` names no file: "
                            f"{tmp_path / 'nope.png'} (a relative path starts at the "
                            f"notebook's working directory, {tmp_path}); expected the path of "
                            "an image file, or an http(s) URL")
    assert fake_server.requests == []


def test_an_image_url_is_sent_as_is_and_not_counted(shell, fake_server):
    r, _ = chat(shell, "-m openai:gpt-4o --dry-run", "user: ![x](https://example.invalid/cat.png)")
    part = r.request["messages"][0]["content"][0]
    assert part == {"type": "image_url", "image_url": {"url": "https://example.invalid/cat.png"}}
    assert "1 image not counted: given by URL" in r._repr_mimebundle_()[0]["text/plain"]
    r, _ = chat(shell, "-p fake --no-stream", "user: ![x](https://example.invalid/cat.png)")
    assert r.text == "echo: [image https://example.invalid/cat.png]"


@pytest.fixture
def openai_fake(fake_server, monkeypatch):
    """OpenAI's own API (kind openai) at the fake server's address."""
    monkeypatch.setenv("FAKE_OPENAI_KEY", KEY)
    gptmagic.add_profile("oai", kind="openai", base_url=fake_server.url,
                         api_key_env="FAKE_OPENAI_KEY", default_model="gpt-4.1-mini")
    return fake_server


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_exact_count_sends_the_image_as_an_input_image(shell, openai_fake, raw, api):
    r, _ = chat(shell, f"-p oai --api {api} --dry-run --exact-count", CELL)
    (asked,) = openai_fake.requests
    assert asked.path == "/v1/responses/input_tokens"
    items = asked.json["input"]
    image = next(p for item in items if isinstance(item["content"], list)
                 for p in item["content"] if p["type"] == "input_image")
    validate(image, "InputImageContent")
    assert image["image_url"].endswith(b64(raw)) and image["detail"] == "low"
    assert r.exact_count == 2 + 3 + 85  # the fake server's words, and 85 for the image
    data, _ = r._repr_mimebundle_()
    assert f"Exact prompt tokens: {r.exact_count:,}" in data["text/plain"]


def test_the_eval_store_keeps_the_request_without_base64(tmp_path, raw):
    url = f"data:image/png;base64,{b64(raw)}"
    store = Store(tmp_path / "cache.sqlite")
    request = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}}]}]}
    assert store.put("k1", "http://x/v1", "m", request, Result(kind="chat", model="m", choices=[]))
    store.close()
    db = sqlite3.connect(tmp_path / "cache.sqlite")
    (kept,) = db.execute("SELECT request FROM calls").fetchone()
    db.close()
    no_base64(raw, kept)
    assert json.loads(kept)["messages"][0]["content"][0]["image_url"]["url"].startswith(
        "data:image/png;base64,… (")


@pytest.mark.parametrize(("api", "part", "said"), [
    ("chat", {"type": "image_url", "image_url": {"detail": "low"}}, "'url' is a required"),
    ("chat", {"type": "image_url", "image_url": {"url": "x", "detail": "medium"}},
     "'medium' is not one of"),
    ("chat", {"type": "image_url", "image_url": {"url": "data:image/png;base64,"
                                                 + b64(b"not an image " * 40)}},
     "does not hold an image"),
    ("chat", {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,"
                                                 + b64(png_bytes())}},
     "says image/jpeg but holds a PNG image"),
    ("chat", {"type": "input_image", "image_url": "https://e.invalid/a.png", "detail": "low"},
     "Invalid content part type 'input_image'"),
    ("responses", {"type": "input_image", "image_url": "https://e.invalid/a.png"},
     "'detail' is a required"),
    ("responses", {"type": "image_url", "image_url": {"url": "https://e.invalid/a.png"}},
     "Invalid content part type 'image_url'"),
])
def test_the_fake_server_refuses_image_parts_the_spec_does_not_allow(fake_server, monkeypatch,
                                                                     api, part, said):
    monkeypatch.setenv("FAKE_KEY", KEY)
    gptmagic.add_profile("fake", base_url=fake_server.url, default_model="fake-model",
                         api_key_env="FAKE_KEY")
    messages = [{"role": "user", "content": [{"type": "text", "text": "what?"}, part]}]
    call = gptmagic.chat if api == "chat" else gptmagic.respond
    with pytest.raises(gptmagic.BadRequestError) as e:
        call(messages, model="fake:fake-model")
    assert said in str(e.value)
    where = "messages" if api == "chat" else "input"
    assert e.value.body["error"]["param"] == f"{where}[0].content[1]"
    assert b64(b"not an image " * 40)[:40] not in str(e.value)


def test_the_tokens_magic_counts_the_image_by_the_rule(shell, raw):
    with capture_output() as cap:  # run as a cell, so the token view is shown after it
        counter = shell.run_cell("%%tokens -m gpt-4o\n"
                                 "user: what? ![cat](cat.png){detail=high}").result
    (view,) = [o.data["text/plain"] for o in cap.outputs
               if "application/vnd.jupyter.widget-view+json" in o.data]
    # The token view cuts the text a model reads: the image is a mark, never its base64.
    joined = view.replace("|", "")  # the view separates tokens with |
    assert joined.startswith("gpt-4o · o200k_base: 5 tokens\nwhat?·[image]")
    assert "base64" not in joined and "image_url" not in joined
    plain = gptmagic.count_tokens([{"role": "user", "content": "what? "}], model="gpt-4o")
    assert counter.data["total"] == plain.total + 85 + 170  # one 512 px tile at high detail
    assert "images estimated with gpt-4o's tile rule" in counter.data["note"]
    shown = [str(v) for o in cap.outputs for v in o.data.values()]
    no_base64(raw, cap.stdout, json.dumps(counter.data), *shown)
