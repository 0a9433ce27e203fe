"""Images in prompts, below the notebook: the cell grammar (``![alt](src){detail=...}`` and
its escape), reading files (client/images), OpenAI's image token rule (catalog/vision)
and counts, the Responses translation, thumbnails and elided base64 (views)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from openapi_schema import validate
from PIL import Image

from gptmagic.catalog.tokens import count
from gptmagic.catalog.vision import dimensions, image_rule, image_tokens
from gptmagic.client import images as loading
from gptmagic.client.images import load_images
from gptmagic.core.images import elide, part_text, text_only_refusal
from gptmagic.core.messages import CellSyntaxError, parse_cell, read_cell, render_cell
from gptmagic.core.to_responses import input_items, responses_body
from gptmagic.errors import RequestError
from gptmagic.views.images import THUMB, thumbnail, views_of
from gptmagic.views.tables import HistoryRow, dry_run_bundle, history_bundle


def picture(path: Path, size: tuple[int, int] = (64, 32), fmt: str = "PNG",
            colour: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, fmt)
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def data_url(size: tuple[int, int] = (64, 32), fmt: str = "PNG") -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, "red").save(buf, fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buf.getvalue()).decode()


def image(url: str, detail: str | None = None) -> dict:
    inner = {"url": url, **({"detail": detail} if detail else {})}
    return {"type": "image_url", "image_url": inner}


def text(t: str) -> dict:
    return {"type": "text", "text": t}


# -- the grammar -----------------------------------------------------------------------------


def test_an_image_makes_the_message_a_list_of_parts_in_order():
    cell = read_cell("system: be brief\nuser: What is this? ![a cat](cat.png){detail=low}\n"
                     "and this ![dog](<my dog.png>) thanks")
    assert cell.messages == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [text("What is this? "), image("cat.png", "low"),
                                     text("\nand this "), image("my dog.png"),
                                     text(" thanks")]}]
    first, second = cell.images
    assert (first.src, first.alt, first.detail, first.line) == ("cat.png", "a cat", "low", 2)
    assert first.written == "![a cat](cat.png){detail=low}"
    assert (second.src, second.line, second.message, second.part) == ("my dog.png", 3, 1, 3)
    assert cell.messages[1]["content"][first.part]["image_url"]["url"] == "cat.png"


def test_a_cell_without_images_is_unchanged_and_whitespace_between_images_is_dropped():
    assert parse_cell("user: look at [this](x.png) and !this") == [
        {"role": "user", "content": "look at [this](x.png) and !this"}]
    assert parse_cell("![a](a.png)\n\n![b](b.png)")[0]["content"] == [image("a.png"),
                                                                      image("b.png")]


@pytest.mark.parametrize(("line", "sent"), [
    ("\\![a](b.png) is Markdown", "![a](b.png) is Markdown"),
    ("say \\\\![a](b.png)", "say \\![a](b.png)"),
    ("\\![a](b.png){detail=low}", "![a](b.png){detail=low}"),
    ("\\![not closed](x", "\\![not closed](x"),  # nothing to protect: the backslash stays
])
def test_a_backslash_before_an_image_sends_it_as_text(line, sent):
    assert parse_cell(f"user: {line}") == [{"role": "user", "content": sent}]


def test_placeholders_fill_the_path_but_an_inserted_value_is_never_an_image():
    ns = {"path": "chart.png", "evil": "![x](/etc/passwd)"}
    cell = read_cell("user: ![the chart]({path}) {evil}", ns)
    assert cell.messages[0]["content"] == [image("chart.png"), text(" ![x](/etc/passwd)")]
    assert cell.images[0].src == "chart.png" and cell.images[0].written == "![the chart]({path})"


@pytest.mark.parametrize(("cell", "line", "fragment"), [
    ("user: ![x](a b.png)", 1, "has a space in its path; expected the path in angle brackets"),
    ("system: hi\n\nsystem: ![x](a.png)", 3, "is in a system message, and only user"),
    ("user: hi\nassistant: ![x](a.png)", 2, "is in a assistant message"),
    ("user: ![x](a.png){detail=medium}", 1, "has detail='medium'; expected {detail=low}"),
    ("user: ![x](a.png){width=3}", 1, "has attribute 'width'"),
    ("user: ok\n![x]( )", 2, "has no path or URL"),
])
def test_bad_images_are_errors_naming_the_line(cell, line, fragment):
    with pytest.raises(CellSyntaxError) as e:
        parse_cell(cell)
    assert e.value.line == line and fragment in str(e.value)
    assert str(e.value).startswith(f"cell line {line}: image `![x](")  # in backticks, as all


@pytest.mark.parametrize("messages", [
    [{"role": "user", "content": [text("What is "), image("cat.png", "low"), text("?")]}],
    [{"role": "user", "content": [image("data:image/png;base64,iVBORw0KGgo="),
                                  image("my dog (1).png", "high")]}],
    [{"role": "user", "content": "Markdown: ![a](b.png) and \\![c](d) {x}"}],
    [{"role": "user", "content": [text("\\![lit](x) then "), image("y.png"),
                                  text(" {detail=low} later")]}],
])
def test_render_cell_writes_images_back(messages):
    assert parse_cell(render_cell(messages)) == messages
    assert parse_cell(render_cell(messages, escape_braces=True), namespace={}) == messages


@pytest.mark.parametrize(("content", "fragment"), [
    ([text("a"), text("b"), image("x.png")], "cannot hold as written"),
    ([text("only text")], "cannot hold as written"),
    ([text("ends in \\"), image("x.png")], "would change the image next to it"),
    ([image("x.png"), text("{detail=low}")], "would change the image next to it"),
    ([image("x.png", "medium")], "is a part a cell cannot hold"),
])
def test_render_cell_refuses_parts_it_cannot_write_back(content, fragment):
    with pytest.raises(RequestError, match="messages\\[0\\]") as e:
        render_cell([{"role": "user", "content": content}])
    assert fragment in str(e.value)
    with pytest.raises(RequestError, match="cannot hold as written"):
        render_cell([{"role": "system", "content": [image("x.png")]}])


# -- reading the files ----------------------------------------------------------------------


def test_a_local_file_becomes_a_data_url_of_its_bytes(tmp_path):
    raw = picture(tmp_path / "cat.png")
    cell = load_images(read_cell("user: what? ![cat](cat.png)"), base=tmp_path, detail="low")
    part = cell.messages[0]["content"][1]
    assert part["image_url"]["detail"] == "low"  # --detail fills what the image left out
    url = part["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == raw
    ref = cell.images[0]
    assert (ref.url, ref.size, ref.dimensions) == (url, len(raw), (64, 32))
    assert "base64" not in repr(ref) and "base64" not in repr(cell.images)


def test_own_detail_wins_over_the_default_and_urls_are_not_fetched(tmp_path):
    picture(tmp_path / "a.jpg", fmt="JPEG")
    cell = load_images(read_cell("user: ![a](a.jpg){detail=high} "
                                 "![b](https://example.invalid/b.png)"),
                       base=tmp_path, detail="low")
    a, b = (p["image_url"] for p in cell.messages[0]["content"])
    assert a["detail"] == "high" and a["url"].startswith("data:image/jpeg;base64,")
    assert b == {"url": "https://example.invalid/b.png", "detail": "low"}
    assert cell.images[1].size is None


@pytest.mark.parametrize(("setup", "fragment", "expected"), [
    (lambda d: None, "names no file: ", "the path of an image file"),
    (lambda d: (d / "cat.png").mkdir(), "is a folder", "the path of an image file"),
    (lambda d: (d / "cat.png").write_text("not an image"), "is not an image Pillow can read",
     "a PNG, JPEG, WEBP or GIF file"),
    (lambda d: picture(d / "cat.png", fmt="BMP"), "is a BMP image", "the image converted to PNG"),
])
def test_a_file_openai_would_refuse_is_an_error_naming_image_line_and_fix(
        tmp_path, setup, fragment, expected):
    setup(tmp_path)
    with pytest.raises(CellSyntaxError) as e:
        load_images(read_cell("user: hi\nlook: ![my cat](cat.png)"), base=tmp_path)
    said = str(e.value)
    assert e.value.line == 2 and said.startswith("cell line 2: image `![my cat](cat.png)` ")
    assert fragment in said and f"expected {expected}" in said
    if "names no file" in said:
        assert str(tmp_path / "cat.png") in said and "working directory" in said


def test_an_animated_gif_a_big_file_and_other_schemes_are_refused(tmp_path, monkeypatch):
    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with pytest.raises(CellSyntaxError, match="is an animated GIF"):
        load_images(read_cell("user: ![a](anim.gif)"), base=tmp_path)
    picture(tmp_path / "big.png", size=(200, 200))
    monkeypatch.setattr(loading, "MAX_IMAGE_BYTES", 100)
    with pytest.raises(CellSyntaxError, match="OpenAI takes up to 0.0 MB an image"):
        load_images(read_cell("user: ![a](big.png)"), base=tmp_path)
    with pytest.raises(CellSyntaxError, match="has a URL gptmagic does not read"):
        load_images(read_cell("user: ![a](file:///etc/x.png)"), base=tmp_path)
    with pytest.raises(RequestError, match="--detail must be one of low, high, auto"):
        load_images(read_cell("user: hi"), base=tmp_path, detail="medium")


def test_a_file_too_big_is_refused_before_it_is_read(tmp_path, monkeypatch):
    with open(tmp_path / "film.png", "wb") as f:
        f.truncate(loading.MAX_IMAGE_BYTES + 1)  # sparse: nothing written
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail(f"{self} was read"))
    with pytest.raises(CellSyntaxError, match=r"is 20.0 MB .*OpenAI takes up to 20.0 MB"):
        load_images(read_cell("user: ![a](film.png)"), base=tmp_path)


def test_a_small_file_of_too_many_pixels_is_a_clear_error_and_not_counted(tmp_path):
    Image.new("1", (14_000, 14_000)).save(tmp_path / "bomb.png")  # ~25 KB, 196 M pixels
    with pytest.raises(CellSyntaxError, match="is too many pixels to read safely"):
        load_images(read_cell("user: ![a](bomb.png)"), base=tmp_path)
    url = "data:image/png;base64," + base64.b64encode((tmp_path / "bomb.png").read_bytes()
                                                      ).decode()
    assert dimensions(url) is None
    counted = count([{"role": "user", "content": [image(url)]}], "gpt-4o")
    assert "1 image not counted" in (counted.note or "")


# -- OpenAI's image token rule ------------------------------------------------------------------


@pytest.mark.parametrize(("model", "size", "detail", "tokens"), [
    ("gpt-4o", (1024, 1024), "high", 765),           # the guide's examples
    ("gpt-4o", (2048, 4096), "high", 1105),
    ("gpt-4o", (4096, 8192), "low", 85),
    ("gpt-4o-2024-08-06", (1024, 1024), None, 765),  # auto: counted as high
    ("gpt-4.1", (512, 512), "high", 85 + 170),
    ("gpt-4o-mini", (1024, 1024), "high", 2833 + 4 * 5667),
    ("gpt-5", (1024, 1024), "auto", 70 + 4 * 140),
    ("gpt-5.2", (1024, 1024), "low", 70),            # by family
    ("o3", (1024, 1024), "high", 75 + 4 * 150),
    ("gpt-4.1-mini", (1024, 1024), "low", round(1024 * 1.62)),  # patches: detail ignored
    ("gpt-4.1-nano", (1800, 2400), None, round(1452 * 2.46)),   # the guide's 1452 patches
    ("o4-mini", (100, 33), None, round(4 * 2 * 1.72)),
    ("gpt-5-mini", (4000, 4000), None, round(39 * 39 * 1.62)),  # scaled into 1536
])
def test_the_published_rule(model, size, detail, tokens):
    rule = image_rule(model)
    assert rule is not None and image_tokens(*size, detail, rule) == tokens


def test_models_without_a_published_rule_get_none():
    assert image_rule("gpt-3.5-turbo") is None and image_rule("o3-mini") is None
    assert image_rule("openai:gpt-4o").describe() == "gpt-4o's tile rule (85 + 170 per 512 px tile)"
    assert image_rule("o1-preview") is None  # o1-preview reads no images; o1 does
    # A fine-tune follows its base model's rule.
    assert image_rule("ft:gpt-4o-2024-08-06:acme:tagger:abc123").family == "gpt-4o"


def test_dimensions_come_from_the_header_of_a_data_url():
    assert dimensions(data_url((300, 200), "JPEG")) == (300, 200)
    assert dimensions(data_url((7, 9), "WEBP")) == (7, 9)
    assert dimensions("https://example.invalid/x.png") is None
    assert dimensions("data:image/png;base64,bm90IGFuIGltYWdl") is None


def test_counts_add_image_tokens_and_say_they_are_an_estimate():
    url = data_url((1024, 1024))
    with_image = [{"role": "user", "content": [text("what is it"), image(url, "high")]}]
    plain = [{"role": "user", "content": "what is it"}]
    c, p = count(with_image, "gpt-4o"), count(plain, "gpt-4o")
    assert c.total == p.total + 765 and c.messages[0].images == 765
    assert p.exact and not c.exact
    assert "images estimated with gpt-4o's tile rule" in c.note
    # The Responses API's shape of the same prompt counts the same.
    items = input_items(with_image)
    assert count(items, "gpt-4o").total == c.total
    by_url = count([{"role": "user", "content": [text("x"), image("https://e.invalid/a.png")]}],
                   "gpt-4o")
    assert not by_url.exact and "1 image not counted: given by URL" in by_url.note
    none = count(with_image, "gpt-3.5-turbo")
    assert none.messages[0].images == 0 and "no image rule for 'gpt-3.5-turbo'" in none.note


# -- the Responses API's shape ----------------------------------------------------------------


def test_image_parts_become_input_image_items_valid_in_the_spec():
    url = data_url()
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": [text("what?"), image(url), image(url, "low")]},
                {"role": "assistant", "content": [text("a "), text("cat")]},
                {"role": "user", "content": "and?"}]
    body = responses_body(messages, {}, model="gpt-4.1-mini")
    assert body["instructions"] == "Be brief."
    assert body["input"][0]["content"] == [
        {"type": "input_text", "text": "what?"},
        {"type": "input_image", "image_url": url, "detail": "auto"},
        {"type": "input_image", "image_url": url, "detail": "low"}]
    assert body["input"][1] == {"role": "assistant", "content": "a cat"}
    for part in body["input"][0]["content"][1:]:
        validate(part, "InputImageContent")
    # The spec's input item is a oneOf that a message with content parts matches twice
    # (EasyInputMessage and Item): each item is checked as the message it is.
    for item in body["input"]:
        validate(item, "EasyInputMessage")
    validate({"model": "gpt-4.1-mini", **body, "input": "x"}, "CreateResponse")
    assert messages[1]["content"][1] == image(url)  # the chat messages are left as they were


# -- keeping base64 out of what is shown ------------------------------------------------------


def test_elide_replaces_every_data_url_with_its_size():
    url = data_url((400, 400))
    kb = len(url.split(",", 1)[1]) * 3 // 4 // 1000
    value = {"messages": [{"content": [image(url)]}], "note": f"bad: {url} there"}
    shown = elide(value)
    assert json.dumps(shown).count(f"data:image/png;base64,\\u2026 ({kb} KB)") == 2
    assert url.split(",", 1)[1][:40] not in json.dumps(shown)
    assert elide("data:image/png;base64,short") == "data:image/png;base64,short"
    # Parameters before ;base64, and a body broken over lines (MIME's 76 columns).
    body = url.split(",", 1)[1]
    named = f"data:image/png;name=cat.png;base64,{body}"
    assert elide(named) == f"data:image/png;base64,\u2026 ({kb} KB)"
    wrapped = "data:image/png;base64," + "\n".join(body[i:i + 76]
                                                   for i in range(0, len(body), 76))
    shown = elide(wrapped + "\nand then some text")
    assert body[-30:] not in shown and shown.endswith("\nand then some text")
    assert part_text([text("hi "), image(url)]) == "hi [image]"


def test_text_only_refusal_names_lines_or_parts():
    """Worded as every other image error: it said "line 2" where they say "cell line 2"."""
    cell = read_cell("user: hi\nsee ![cat](cat.png)")
    said = str(text_only_refusal(cell.messages, cell.images, instead="--model gpt-4.1-mini"))
    assert said == ("cell line 2: image `![cat](cat.png)`: SmolLM2 (the embedded model) reads "
                    "text only; send it to a vision model (--model gpt-4.1-mini) or remove the "
                    "image")
    said = str(text_only_refusal(cell.messages))
    assert said.startswith("messages[0].content[1] is an image: SmolLM2 (the embedded model) "
                           "reads text only; send it") and "model='gpt-4.1-nano'" in said
    assert text_only_refusal([{"role": "user", "content": "hi"}]) is None
    two = read_cell("user: ![a](a.png) ![b](b.png)\n![c](c.png)")
    assert str(text_only_refusal(two.messages, two.images)).startswith(
        "cell lines 1 and 2: images `![a](a.png)`, `![b](b.png)` and `![c](c.png)`: SmolLM2 "
        "(the embedded model) reads text only; send them to a vision model")
    five = read_cell("user: " + " ".join(f"![{i}]({i}.png)" for i in range(5)))
    assert str(text_only_refusal(five.messages, five.images)).startswith(
        "cell line 1: images `![0](0.png)`, `![1](1.png)`, `![2](2.png)` and 2 more: ")


def test_every_image_error_names_it_the_same_way(tmp_path):
    """``cell line N: image `...```: the grammar's errors quoted with '...', the embedded
    model's refusal said "line 2", the file errors used backticks."""
    from gptmagic.client.images import load_images

    (tmp_path / "bad.png").write_text("not an image")
    errors = []
    for cell in ("user: hi\n![x](nothere.png)", "user: hi\n![x](bad.png)",
                 "system: hi\n![x](a.png)", "user: hi\n![x](a b.png)",
                 "user: hi\n![x](a.png){detail=huge}"):
        with pytest.raises(CellSyntaxError) as e:
            load_images(read_cell(cell), base=str(tmp_path))
        errors.append(str(e.value))
    cell = read_cell("user: hi\n![x](a.png)")
    errors.append(str(text_only_refusal(cell.messages, cell.images)))
    assert all(e.startswith("cell line 2: image `![x](") for e in errors), errors
    long = read_cell("user: ![x](" + "d" * 200 + ".png)")
    assert len(long.images[0].where) < 120 and long.images[0].where.endswith("…`")


def test_the_refusal_suggests_a_current_vision_model():
    """The model a refusal points to reads images and is not being retired (gpt-4.1-mini,
    the suggestion before, shuts down on 2027-01-14)."""
    import re

    from gptmagic.catalog.lifecycle import shutdown_of
    from gptmagic.notebook.images import VISION_MODEL

    cell = read_cell("user: see ![cat](cat.png)")
    said = str(text_only_refusal(cell.messages))
    suggested = re.search(r"model='([\w.-]+)'", said)[1]
    for model in (suggested, VISION_MODEL):
        assert shutdown_of(model)[0] is None, model
        assert image_rule(model) is not None, model


def test_thumbnails_are_small_pngs_and_urls_are_not_loaded(tmp_path):
    thumb = thumbnail(data_url((640, 320), "JPEG"))
    assert thumb is not None and thumb.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(thumb.split(",", 1)[1]))) as img:
        assert img.size == (THUMB, THUMB // 2)
    assert thumbnail("https://example.invalid/a.png") is None
    picture(tmp_path / "cat.png", size=(640, 320))
    cell = load_images(read_cell("user: ![a <cat>](cat.png) ![u](https://e.invalid/u.png)"),
                       base=tmp_path)
    views = views_of(cell.messages, cell.images)
    assert views[0].alt == "a <cat>" and views[0].source == "cat.png (line 1)"
    assert views[0].thumb is not None and views[1].thumb is None
    assert "not fetched: size unknown" in views[1].caption()
    data, _ = dry_run_bundle({"model": "gpt-4o", "messages": cell.messages}, url="http://x/v1",
                             count=None, estimate=None, images=cell.images)
    body = cell.messages[0]["content"][0]["image_url"]["url"].split(",", 1)[1]
    assert all(body[:40] not in v for v in data.values())
    assert data["text/html"].count("<img ") == 1 and 'alt="a &lt;cat&gt;"' in data["text/html"]
    assert "https://e.invalid/u.png" in data["text/html"]  # shown as text, never an <img>
    assert "[image: a <cat> · cat.png (line 1) · 640×320" in data["text/plain"]
    rows = [HistoryRow(1, "user", None, part_text(cell.messages[0]["content"]), 10, "k",
                       images=tuple(views))]
    hist, _ = history_bundle(rows, thread="default", context_window=None, total=10)
    assert "[image][image]" in hist["text/plain"] and hist["text/html"].count("<img ") == 1
    assert all(body[:40] not in v for v in hist.values())


def test_a_data_url_typed_in_a_cell_is_checked_and_elided_in_errors(tmp_path):
    url = data_url((40, 40))
    cell = load_images(read_cell(f"user: ![x]({url})"), base=tmp_path)
    assert cell.messages[0]["content"][0]["image_url"]["url"] == url
    assert cell.images[0].dimensions == (40, 40)
    bad = "data:image/png;base64," + base64.b64encode(b"not an image at all " * 10).decode()
    with pytest.raises(CellSyntaxError, match="is not an image Pillow can read") as e:
        load_images(read_cell(f"user: ![x]({bad})"), base=tmp_path)
    assert bad[30:80] not in str(e.value) and "base64,… (" in str(e.value)
    refusal = str(text_only_refusal(cell.messages, cell.images))
    assert url[30:80] not in refusal and url[30:80] not in repr(cell.images[0])
