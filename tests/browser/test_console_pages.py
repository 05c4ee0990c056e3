"""Every console page, used in headless Chromium as a person would, against the real default models.

Each test performs the page's action and checks what is visible: pixels on canvases, text in the
page, a key's secret shown once. The numbers a page drew from are read from the very response the
page received (`expect_response`), so the checks need no hard-coded model output.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import skimage.data
from PIL import Image

from tests.browser.conftest import Console, Tab
from tests.server.test_darknet import _collage
from tests.speech_clips import SHORT, words

PAGES = ["/console", "/console/play/yolov3-tiny", "/console/admin/models", "/console/admin/keys",
         "/console/admin/usage", "/console/admin/audit", "/docs"]
PWNED = "<script>window.__pwned=1</script><img src=x onerror=window.__pwned=2>"


def _png(image: Image.Image, path: Path) -> Path:
    image.save(path, "PNG")
    return path


def _run(tab: Tab, route: str, button: str) -> Any:
    """Click the form's button and return the JSON answer of the call it made to `route`."""
    with tab.page.expect_response(lambda r: r.url.endswith(route) and r.request.method == "POST",
                                  timeout=180_000) as answer:
        tab.page.click(f"#playground button[type=submit]:has-text('{button}')")
    response = answer.value
    assert response.ok, response.text()
    tab.page.wait_for_load_state("networkidle")
    return response.json()


def _pixels(tab: Tab, selector: str, points: list[tuple[float, float]]) -> list[tuple[int, int, int]]:
    return [tuple(p) for p in tab.page.eval_on_selector(selector, """(canvas, points) => {
        const ctx = canvas.getContext("2d");
        // The pixel a point falls in, kept on the canvas: a line's centre on the edge is half drawn there.
        const clamp = (v, size) => Math.min(Math.max(0, Math.floor(v)), size - 1);
        const at = ([x, y]) => ctx.getImageData(clamp(x, canvas.width), clamp(y, canvas.height), 1, 1).data;
        return points.map((point) => Array.from(at(point).slice(0, 3)));
    }""", points)]


def _colours(tab: Tab, labels: list[str]) -> dict[str, tuple[int, int, int]]:
    """The colour draw.js gives each label on this page (the module the page loaded, same instance)."""
    hexes = tab.page.evaluate("async (labels) => { const m = await import('/console/static/draw.js');"
                              " return labels.map((l) => m.colourFor(l)); }", labels)
    return {label: tuple(int(h[i:i + 2], 16) for i in (1, 3, 5)) for label, h in zip(labels, hexes)}


def _close(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b))


def _outline(box: dict[str, float]) -> list[tuple[float, float]]:
    """Points on the four edges of a box, at a quarter, half and three quarters of each: on the centre of a
    2-px line, whose pixel is covered whole wherever the line falls between pixels."""
    x1, y1, x2, y2 = box["x1"], box["y1"], box["x2"], box["y2"]
    along = (0.25, 0.5, 0.75)
    return [(x1 + f * (x2 - x1), y) for f in along for y in (y1, y2)] + \
           [(x, y1 + f * (y2 - y1)) for f in along for x in (x1, x2)]


# -- playgrounds

def test_the_front_page_lists_every_served_model(tab: Tab) -> None:
    served = requests.get(f"{tab.console.url}/v1/models", timeout=30,
                          headers={"Authorization": f"Bearer {tab.console.admin_key}"}).json()["data"]
    tab.open("/console")
    links = tab.page.locator("#models a")
    assert sorted(links.all_inner_texts()) == sorted(m["id"] for m in served)
    assert tab.page.locator("#models .task").all_inner_texts() == [m["task"] for m in served]
    tab.shot("home")


def test_detection_boxes_are_drawn_where_the_objects_are(tab: Tab, tmp_path: Path) -> None:
    sheet, regions = _collage()
    tab.open("/console/play/yolov3-tiny")
    tab.page.set_input_files("#playground input[type=file]", str(_png(sheet, tmp_path / "collage.png")))
    found = _run(tab, "/v1/detect/objects", "Detect")["data"][0]
    canvas = "canvas[data-role=detections]"
    assert tab.page.eval_on_selector(canvas, "c => [c.width, c.height]") == [900, 600]
    objects = {o["label"]: o for o in reversed(found["objects"])}  # each label's best box (best first)
    assert set(regions) <= set(objects), found["objects"]
    colours = _colours(tab, list(objects))
    for label, (x1, y1, x2, y2) in regions.items():
        box = objects[label]["box"]
        assert x1 <= (box["x1"] + box["x2"]) / 2 <= x2 and y1 <= (box["y1"] + box["y2"]) / 2 <= y2, (label, box)
        outline = _pixels(tab, canvas, _outline(box))
        on_line = sum(_close(p, colours[label]) for p in outline)
        # Another box or a label tag may cover part of an outline; most of it shows the label's colour.
        assert on_line >= len(outline) * 2 // 3, (label, box, outline, colours[label])
    listed = tab.page.locator("ol.found li").all_inner_texts()
    assert len(listed) == len(found["objects"]) and all(label in " ".join(listed) for label in regions)
    tab.shot("detect-objects")
    tab.page.set_viewport_size({"width": 400, "height": 900})  # the 900-px drawing shrinks to the window
    assert tab.page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def test_faces_are_boxed_with_their_landmarks(tab: Tab, tmp_path: Path) -> None:
    tab.open("/console/play/mtcnn")
    tab.page.set_input_files("#playground input[type=file]",
                             str(_png(Image.fromarray(skimage.data.astronaut()), tmp_path / "astronaut.png")))
    faces = _run(tab, "/v1/detect/faces", "Detect")["data"][0]["faces"]
    assert len(faces) == 1
    colour = _colours(tab, ["face"])["face"]
    canvas = "canvas[data-role=detections]"
    outline = _pixels(tab, canvas, _outline(faces[0]["box"]))
    assert sum(_close(p, colour) for p in outline) >= len(outline) * 2 // 3
    eyes = _pixels(tab, canvas, [(p["x"], p["y"]) for p in faces[0]["landmarks"].values()])
    assert all(_close(p, colour) for p in eyes), eyes  # a dot on each landmark
    tab.shot("detect-faces")


def test_two_photos_of_one_face_are_the_same_person(tab: Tab, tmp_path: Path) -> None:
    photo = Image.fromarray(skimage.data.astronaut())
    tab.open("/console/play/dlib-face-recognition")
    files = tab.page.locator("#playground input[type=file]")
    files.nth(0).set_input_files(str(_png(photo, tmp_path / "a.png")))
    files.nth(1).set_input_files(str(_png(photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT), tmp_path / "b.png")))
    _run(tab, "/v1/faces/embeddings", "Compare faces")
    verdict = tab.page.inner_text("[data-role=verdict]")
    distance = float(re.search(r"Distance ([0-9.]+)", verdict).group(1))  # type: ignore[union-attr]
    assert distance < 0.6 and "the same person" in verdict
    tab.shot("faces-compare")


def test_entity_spans_are_highlighted_with_their_labels(tab: Tab) -> None:
    text = "Ada Lovelace met Charles Babbage in London in June 1833."
    tab.open("/console/play/en-core-web-sm")
    tab.page.fill("#playground textarea", text)
    entities = _run(tab, "/v1/entities", "Find entities")["data"][0]["entities"]
    assert any(e["label"] == "GPE" and e["text"] == "London" for e in entities), entities
    marks = tab.page.locator("[data-role=entities] mark")
    shown = [(m.get_attribute("data-label"), m.locator(".tag").inner_text(),
              m.evaluate("m => m.firstChild.textContent")) for m in marks.all()]
    assert shown == [(e["label"], e["label"], e["text"]) for e in entities]
    assert tab.page.inner_text("[data-role=entities]").replace("\n", "").count("London") == 1
    assert sorted(tab.page.locator(".legend li").all_inner_texts()) == sorted({e["label"] for e in entities})
    tab.shot("entities")


def test_markup_in_the_input_and_in_model_output_is_shown_as_text(tab: Tab) -> None:
    text = f"John Smith wrote {PWNED} in Paris."
    tab.open("/console/play/en-core-web-sm")
    tab.page.fill("#playground textarea", text)
    _run(tab, "/v1/entities", "Find entities")
    assert PWNED in tab.page.inner_text("[data-role=entities]")

    # The chat model is held to a schema whose only answer is markup: the model's own output carries it.
    schema = json.dumps({"type": "object", "properties": {"html": {"const": PWNED}}, "required": ["html"]})
    tab.open("/console/play/smollm2-135m-instruct")
    tab.page.fill("#playground textarea >> nth=2", schema)
    tab.page.uncheck("#playground input[type=checkbox]")
    reply = _run(tab, "/v1/chat/completions", "Send")
    assert PWNED in reply["choices"][0]["message"]["content"]
    assert PWNED in tab.page.inner_text("[data-role=answer]")
    assert PWNED in tab.page.inner_text("[data-role=parsed]")
    assert tab.page.locator("#result script, #result img").count() == 0
    assert tab.page.evaluate("window.__pwned") is None
    tab.shot("chat-json-schema")


def test_chat_streams_its_answer_and_shows_the_code(tab: Tab) -> None:
    tab.open("/console/play/smollm2-135m-instruct")
    tab.page.fill("#playground textarea >> nth=1", "Name a colour.")
    with tab.page.expect_response(lambda r: r.url.endswith("/v1/chat/completions"), timeout=180_000) as answer:
        tab.page.click("#playground button[type=submit]")
    assert answer.value.headers["content-type"].startswith("text/event-stream")
    tab.page.locator("#code").wait_for(state="visible", timeout=180_000)  # (a string to eval would break the CSP)
    assert tab.page.inner_text("[data-role=answer]").strip()
    tabs = tab.page.locator("#code-tabs [role=tab]")
    assert tabs.all_inner_texts() == ["curl", "maas_client", "openai"]
    assert "stream=True" in tab.page.inner_text("#code-text") or "curl" in tab.page.inner_text("#code-text")
    tabs.nth(0).focus()
    tab.page.keyboard.press("ArrowRight")  # the tabs move with the arrow keys
    code = tab.page.inner_text("#code-text")
    assert "client.chat(" in code and '"smollm2-135m-instruct"' in code and "Name a colour." in code
    tab.shot("chat")


def test_tool_calls_are_shown_as_calls(tab: Tab) -> None:
    tab.open("/console/play/smollm2-135m-instruct")
    tab.page.fill("#playground textarea >> nth=1", "What is the weather in Paris?")
    tab.page.click("text=Fill in an example tool")  # and tool choice "required": the model must call it
    assert tab.page.input_value("#playground select") == "required"
    with tab.page.expect_response(lambda r: r.url.endswith("/v1/chat/completions"), timeout=180_000) as answer:
        tab.page.click("#playground button[type=submit]")
    tab.page.locator("#code").wait_for(state="visible", timeout=180_000)
    calls: dict[int, list[str]] = {}  # the streamed deltas, put together as the page must
    for line in answer.value.text().splitlines():
        if line.startswith("data: {"):
            for delta in json.loads(line[6:])["choices"][0]["delta"].get("tool_calls") or []:
                name, args = calls.setdefault(delta["index"], ["", ""])
                calls[delta["index"]] = [name + delta["function"].get("name", ""),
                                         args + delta["function"].get("arguments", "")]
    assert calls and all(name == "get_weather" for name, _ in calls.values())
    assert tab.page.locator(".tool-call").all_inner_texts() == [f"{n}({a})" for n, a in calls.values()]
    tab.shot("chat-tools")


def test_embeddings_show_a_similarity_heatmap(tab: Tab) -> None:
    tab.open("/console/play/all-minilm-l6-v2")
    reply = _run(tab, "/v1/embeddings", "Compare")
    n = len(reply["data"])
    size = tab.page.eval_on_selector("canvas.heatmap", "c => [c.width, c.height]")
    assert size[0] == size[1] and size[0] % n == 0
    cell = size[0] // n
    diagonal = _pixels(tab, "canvas.heatmap", [(i * cell + 2, i * cell + 2) for i in range(n)])
    assert all(_close(p, (255, 0, 0)) for p in diagonal), diagonal  # each sentence against itself: 1.0, red
    tab.shot("embeddings")


def test_an_embeddings_model_scores_the_labels_a_person_names(tab: Tab) -> None:
    tab.open("/console/play/all-minilm-l6-v2")
    tab.page.fill("#playground textarea >> nth=1", "The striker scored twice in the final.")
    tab.page.fill("#playground input[required]", "sport, cooking, politics")
    item = _run(tab, "/v1/classify/text", "Classify")["data"][0]
    shown = tab.page.locator(".bars .bar-label").all_inner_texts()
    assert sorted(shown) == ["cooking", "politics", "sport"]
    assert shown == [label["label"] for label in item["labels"]] and shown[0] == "sport"


def test_text_classification_shows_bars_and_token_weights(tab: Tab) -> None:
    tab.open("/console/play/minilm-sentiment")
    assert "negative, neutral, positive" in tab.page.inner_text("#playground")  # its own labels, from the server
    item = _run(tab, "/v1/classify/text", "Classify")["data"][0]
    meters = tab.page.locator(".bars meter")
    assert meters.count() == len(item["labels"])
    assert [float(m.get_attribute("value") or "nan") for m in meters.all()] == \
        pytest.approx([label["score"] for label in item["labels"]])
    tokens = tab.page.locator("[data-role=tokens] .token")
    assert tokens.count() == len(item["explanation"]["tokens"])
    colours = {t.evaluate("t => getComputedStyle(t).backgroundColor") for t in tokens.all()}
    assert len(colours) > 1  # weights differ, and so do the colours
    tab.shot("classify-text")


def test_image_classification_shows_bars_and_the_grad_cam_overlay(tab: Tab, tmp_path: Path) -> None:
    tab.open("/console/play/efficientnet-lite0")
    tab.page.set_input_files("#playground input[type=file]",
                             str(_png(Image.fromarray(skimage.data.chelsea()), tmp_path / "chelsea.png")))
    item = _run(tab, "/v1/classify/image", "Classify")["data"][0]
    assert tab.page.locator(".bars .bar-label").all_inner_texts() == [label["label"] for label in item["labels"]]
    overlay = tab.page.locator("img[data-role=gradcam]")
    overlay.wait_for()
    assert overlay.evaluate("img => img.complete && img.naturalWidth > 0")
    tab.shot("classify-image")


def test_a_transcript_is_shown_with_segments_that_play(tab: Tab) -> None:
    tab.open("/console/play/whisper-tiny.en")
    tab.page.set_input_files("#playground input[type=file]", str(SHORT))
    reply = _run(tab, "/v1/audio/transcriptions", "Transcribe")
    shown = tab.page.inner_text("[data-role=transcript]")
    assert shown == reply["text"].strip() or shown == reply["text"]
    assert {"fox", "dog"} <= set(words(shown))
    segments = tab.page.locator("[data-role=segments] button")
    assert segments.count() == len(reply["segments"]) >= 1
    first = reply["segments"][-1]
    segments.last.click()
    assert tab.page.eval_on_selector("audio", "a => a.currentTime") == pytest.approx(first["start"], abs=0.3)
    assert re.search(r"\d:\d\d\.\d\d\u2013\d:\d\d\.\d\d", segments.last.inner_text())
    tab.shot("speech")


def test_a_task_without_a_view_gets_a_form_from_the_openapi_document(tab: Tab) -> None:
    # A future task: the model's info is rewritten in the browser; the form and the call are real.
    def new_task(route: Any) -> None:
        info = route.fetch().json()
        route.fulfill(json={**info, "task": "some-future-task"})

    tab.page.route("**/v1/models/all-minilm-l6-v2", new_task)
    tab.open("/console/play/all-minilm-l6-v2")
    assert "some-future-task" in tab.page.inner_text("#model-task")
    body = tab.page.locator("#playground textarea").first
    assert '"model": "all-minilm-l6-v2"' in body.input_value()
    assert '"input": "a red car"' in body.input_value()  # the endpoint's first documented example
    body.fill('{"model": "all-minilm-l6-v2", "input": "hello"}')
    reply = _run(tab, "/v1/embeddings", "Send")
    assert len(reply["data"][0]["embedding"]) == 384
    assert '"embedding"' in tab.page.inner_text("[data-role=answer]")


def test_the_pii_task_has_a_page_though_the_console_has_no_view_for_it(tab: Tab) -> None:
    tab.open("/console/play/pii")
    body = tab.page.locator("#playground textarea").first
    assert '"model": "pii"' in body.input_value() and '"input"' in body.input_value()  # from /openapi.json
    reply = _run(tab, "/v1/pii", "Send")
    assert reply["data"]  # the documented example holds personal data, and the page shows what was found
    assert json.loads(tab.page.inner_text("[data-role=answer]")) == reply
    tab.shot("pii-generic")


def test_an_api_error_is_shown_as_its_message(tab: Tab) -> None:
    tab.open("/console/play/en-core-web-sm")
    tab.page.fill("#playground textarea", "x" * 200_001)  # over max_entity_characters
    tab.page.click("#playground button[type=submit]")
    error = tab.page.locator("#error")
    error.wait_for(state="visible")
    assert "max_entity_characters" in error.inner_text() or "characters" in error.inner_text()
    assert "Traceback" not in error.inner_text()


# -- operators

def test_a_created_key_is_shown_once_and_refused_after_revocation(tab: Tab) -> None:
    url = tab.console.url
    tab.open("/console/admin/keys")
    tab.page.fill("#key-name", "browser-tester")
    tab.page.fill("#key-rpm", "100")
    tab.page.fill("#key-tasks", "embeddings")
    with tab.page.expect_response(lambda r: r.url.endswith("/v1/admin/keys") and r.request.method == "POST") \
            as created:
        tab.page.click("#create-key button[type=submit]")
    secret = created.value.json()["key"]
    tab.page.wait_for_function("document.getElementById('new-key-value').textContent.length > 0")
    assert tab.page.inner_text("#new-key-value") == secret
    row = tab.page.locator("tr[data-key=browser-tester]")
    row.wait_for()
    assert "tasks: embeddings" in row.inner_text() and "100 rpm" in row.inner_text()
    tab.shot("keys")
    tab.page.click("#dismiss-key")
    assert secret not in tab.page.content()
    tab.open("/console/admin/keys")
    assert secret not in tab.page.content()  # shown once: the list has only its prefix

    mine = {"Authorization": f"Bearer {secret}"}
    assert requests.post(f"{url}/v1/embeddings", json={"input": "hi"}, headers=mine, timeout=60).status_code == 200
    tab.page.once("dialog", lambda dialog: dialog.accept())
    tab.page.click("tr[data-key=browser-tester] button:has-text('Revoke')")
    tab.page.locator("tr[data-key=browser-tester] [data-role=status]:has-text('revoked')").wait_for()
    deadline = time.monotonic() + 30  # servers refuse a revoked key within auth_cache_seconds (5)
    while (status := requests.get(f"{url}/v1/models", headers=mine, timeout=30).status_code) == 200 \
            and time.monotonic() < deadline:
        time.sleep(0.5)
    assert status == 401

    tab.use_key(secret)  # the console, given the revoked key, says so in the server's words
    tab.open("/console")
    error = tab.page.locator("#error")
    error.wait_for(state="visible")
    assert "revoked" in error.inner_text().lower()


def test_usage_charts_have_points(tab: Tab) -> None:
    headers = {"Authorization": f"Bearer {tab.console.admin_key}"}
    for text in ("one", "two"):
        assert requests.post(f"{tab.console.url}/v1/embeddings", json={"input": text}, headers=headers,
                             timeout=60).status_code == 200
    tab.open("/console/admin/usage")
    tab.page.select_option("#usage-bucket", "minute")
    with tab.page.expect_response(lambda r: "/v1/admin/usage" in r.url) as answer:
        tab.page.click("#usage-form button[type=submit]")
    rows = answer.value.json()["data"]
    tab.page.wait_for_load_state("networkidle")
    charts = tab.page.locator("canvas.chart")
    assert charts.count() == 4
    points = [int(c.get_attribute("data-points") or 0) for c in charts.all()]
    assert points[0] == len({(r["model"], r["start"]) for r in rows}) > 0
    colour = _colours(tab, ["all-minilm-l6-v2"])["all-minilm-l6-v2"]
    pixels = tab.page.eval_on_selector("canvas.chart", "c => Array.from(c.getContext('2d')"
                                                       ".getImageData(0, 0, c.width, c.height).data)")
    drawn = sum(_close(tuple(pixels[i:i + 3]), colour, 4) for i in range(0, len(pixels), 4))
    assert drawn >= 25  # at least one of its dots (radius 4: ~38 pixels wholly its colour) on the requests chart
    tab.shot("usage")


def test_the_models_page_shows_status_replicas_and_queue(tab: Tab) -> None:
    served = requests.get(f"{tab.console.url}/v1/models", timeout=30,
                          headers={"Authorization": f"Bearer {tab.console.admin_key}"}).json()["data"]
    tab.open("/console/admin/models")
    rows = tab.page.locator("#models-table tbody tr")
    assert rows.count() == len(served)
    for row in rows.all():
        cells = row.locator("td").all_inner_texts()
        assert cells[1] == "ready" and cells[2] == "in process" and cells[3].isdigit()
    tab.shot("models")


def test_the_audit_page_lists_key_changes(tab: Tab) -> None:
    headers = {"Authorization": f"Bearer {tab.console.admin_key}"}
    made = requests.post(f"{tab.console.url}/v1/admin/keys", json={"name": "audited"}, headers=headers, timeout=30)
    assert made.status_code == 200
    tab.open("/console/admin/audit")
    first = tab.page.locator("#audit-table tbody tr").first.locator("td").all_inner_texts()
    assert first[1:5] == ["operator", "127.0.0.1", "key.create", "audited"]
    tab.shot("audit")


def test_the_api_reference_lists_every_operation(tab: Tab) -> None:
    spec = requests.get(f"{tab.console.url}/openapi.json", timeout=30).json()
    tab.open("/docs")
    operations = tab.page.locator("#docs details.op")
    assert operations.count() == sum(len(ops) for ops in spec["paths"].values())
    tab.page.fill("#docs-filter", "/v1/entities")
    assert tab.page.locator("#docs details.op:visible").count() == 1
    tab.shot("docs")


# -- for everyone on every page

@pytest.mark.parametrize("path", PAGES)
def test_each_page_has_the_security_headers_and_labelled_controls(tab: Tab, path: str) -> None:
    response = tab.open(path)
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    unlabelled = tab.page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter((c) => c.type !== 'hidden' && !c.labels?.length && !c.getAttribute('aria-label'))
        .map((c) => c.outerHTML)""")
    assert not unlabelled


@pytest.mark.parametrize("width", [400, 1280])
@pytest.mark.parametrize("path", PAGES)
def test_each_page_fits_the_window_without_scrolling_sideways(tab: Tab, path: str, width: int) -> None:
    tab.page.set_viewport_size({"width": width, "height": 900})
    tab.open(path)
    scroll, client = tab.page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert scroll <= client, f"{path} at {width} px is {scroll} px wide"
    if width == 400:
        tab.shot(f"narrow-{path.strip('/').replace('/', '-')}")


def test_the_keyboard_reaches_and_runs_a_playground(tab: Tab) -> None:
    tab.open("/console/play/en-core-web-sm")
    tab.page.keyboard.press("Tab")
    assert tab.page.evaluate("document.activeElement.textContent") == "Skip to content"
    tab.page.keyboard.press("Enter")
    tab.page.keyboard.press("Tab")  # from the skip link straight to the playground's first field
    assert tab.page.evaluate("document.activeElement.tagName") == "TEXTAREA"
    tab.page.keyboard.press("Control+A")
    tab.page.keyboard.type("Grace Hopper lived in New York.")
    tab.page.keyboard.press("Tab")
    assert tab.page.evaluate("document.activeElement.textContent") == "Find entities"
    with tab.page.expect_response("**/v1/entities", timeout=120_000):
        tab.page.keyboard.press("Enter")
    tab.page.locator("[data-role=entities] mark").first.wait_for()
    assert "Grace Hopper" in tab.page.locator("[data-role=entities] mark").all_inner_texts()[0]


def test_the_key_lives_in_session_storage_only(tab: Tab, console: Console) -> None:
    assert tab.page.evaluate("sessionStorage.getItem('maas.key')") == console.admin_key
    assert tab.page.evaluate("localStorage.length") == 0
    assert tab.page.context.cookies() == []
    assert console.admin_key not in tab.page.url
