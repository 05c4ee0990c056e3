"""Response models: convenience properties, lenient reading, notebook display."""

from __future__ import annotations

import array
import base64
import re

import pytest
from pydantic import ValidationError

import maas_client as maas
from maas_client.types import CompletionRequest

CLASSIFICATION = {
    "object": "list", "model": "all-minilm-l6-v2",
    "data": [
        {"index": 0, "labels": [{"label": "<b>cat</b> & co", "score": 0.75},
                                {"label": "dog", "score": 0.25}]},
        {"index": 1, "labels": [{"label": "dog", "score": 1.0}]},
    ],
}


def test_classification_html_shows_each_label_with_a_bar_sized_by_score() -> None:
    result = maas.Classification.model_validate(CLASSIFICATION)
    html = result._repr_html_()
    assert "&lt;b&gt;cat&lt;/b&gt; &amp; co" in html
    assert "<b>cat</b>" not in html
    assert re.findall(r"width:([\d.]+)%", html) == ["75.0", "25.0", "100.0"]
    assert "0.750" in html and "input 1" in html and "all-minilm-l6-v2" in html


def test_classification_shortcuts_read_the_first_input() -> None:
    result = maas.Classification.model_validate(CLASSIFICATION)
    assert result.label == "<b>cat</b> & co"
    assert [s.label for s in result.labels] == ["<b>cat</b> & co", "dog"]
    assert result.data[1].label == "dog"
    empty = maas.Classification.model_validate({"data": []})
    assert (empty.labels, empty.label) == ([], None)


def test_text_properties_are_empty_strings_when_there_is_nothing() -> None:
    assert maas.Completion.model_validate({"choices": []}).text == ""
    assert maas.ChatCompletion.model_validate({"choices": [{"message": {"role": "assistant"}}]}).text == ""
    assert maas.CompletionChunk.model_validate({"choices": [], "usage": {"total_tokens": 3}}).text == ""
    assert maas.ChatCompletionChunk.model_validate({"choices": [{"delta": {"role": "assistant"}}]}).text == ""


def test_base64_embeddings_are_decoded_as_little_endian_float32() -> None:
    values = array.array("f", [0.5, -1.25, 3.0])
    encoded = base64.b64encode(values.tobytes()).decode()
    embeddings = maas.Embeddings.model_validate({"data": [{"index": 0, "embedding": encoded}]})
    assert embeddings.vectors == [[0.5, -1.25, 3.0]]


def test_responses_keep_unknown_fields_and_requests_reject_them() -> None:
    info = maas.ModelInfo.model_validate({"id": "m", "max_context": 2048})
    assert info.max_context == 2048  # type: ignore[attr-defined]
    assert info.task is None
    with pytest.raises(ValidationError):
        CompletionRequest(model="m", prompt="p", max_token=3)  # type: ignore[call-arg]


def test_required_result_data_is_checked() -> None:
    with pytest.raises(ValidationError):
        maas.Completion.model_validate({"id": "x"})


ENTITY_TEXT = "<Ada> & Bob met in Zürich.\nThen\tParis."
ENTITIES = {"model": "ner", "data": [{"index": 0, "entities": [
    {"text": "<Ada>", "label": "PER<x>", "start": 0, "end": 5, "score": 0.5},
    {"text": "Zürich", "label": "GPE", "start": 19, "end": 25},
    {"text": "Paris", "label": "GPE", "start": 32, "end": 37, "score": None}]}]}


def test_entities_html_highlights_each_entity_inline_and_escapes_everything() -> None:
    result = maas.Entities.model_validate(ENTITIES)._with_texts([ENTITY_TEXT])
    html = result._repr_html_()
    assert "<Ada>" not in html and "PER<x>" not in html and "&lt;Ada&gt;" in html and "PER&lt;x&gt;" in html
    assert " &amp; Bob met in " in html and "\nThen\t" in html  # the text between entities, in order
    assert len(re.findall(r"<mark ", html)) == 3
    marks = re.findall(r'<mark title="([^"]*)" style="background:(#\w+)', html)
    assert marks[0][0] == "PER&lt;x&gt; 0.500" and marks[1][0] == "GPE -"
    assert marks[1][1] == marks[2][1]  # one colour per label
    assert re.sub(r"<[^>]+>", "", html).startswith("ner")


def test_entities_html_skips_spans_that_do_not_fit_the_text_and_shows_a_table_without_texts() -> None:
    overlapping = {"data": [{"entities": [{"text": "Ada", "label": "A", "start": 0, "end": 3},
                                          {"text": "da", "label": "B", "start": 1, "end": 3},
                                          {"text": "zzz", "label": "C", "start": 4, "end": 7}]}]}
    html = maas.Entities.model_validate(overlapping)._with_texts(["Ada met"])._repr_html_()
    assert len(re.findall(r"<mark ", html)) == 1 and "met" in html
    table = maas.Entities.model_validate(ENTITIES)._repr_html_()
    assert "<table" in table and "&lt;Ada&gt;" in table and "19:25" in table and "0.500" in table


def test_entities_shortcut_reads_the_first_input() -> None:
    assert maas.Entities.model_validate({"data": []}).entities == []
    assert [e.text for e in maas.Entities.model_validate(ENTITIES).entities] == ["<Ada>", "Zürich", "Paris"]
DETECTIONS = {
    "object": "list", "model": "yolov3-tiny",
    "data": [{"index": 0, "width": 200, "height": 100, "objects": [
        {"label": "<script>cat</script> & co", "score": 0.875, "box": {"x1": 10, "y1": 20, "x2": 60, "y2": 90}},
        {"label": "cup", "score": 0.5, "box": {"x1": 100, "y1": 10, "x2": 150, "y2": 40}}]}],
}


def test_detections_html_draws_each_box_over_the_image_with_escaped_labels() -> None:
    result = maas.ObjectDetections.model_validate(DETECTIONS)
    png = b"\x89PNG fake"
    result._attach_images([(png, "image/png")])
    page = result._repr_html_()
    assert f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}"' in page
    assert 'viewBox="0 0 200 100"' in page  # the SVG's units are the image's pixels
    assert re.findall(r'<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"', page) == [
        ("10.0", "20.0", "50.0", "70.0"), ("100.0", "10.0", "50.0", "30.0")]
    assert "&lt;script&gt;cat&lt;/script&gt; &amp; co 0.88" in page and "<script>" not in page
    assert "yolov3-tiny" in page


def test_detections_html_without_the_image_still_shows_the_boxes() -> None:
    result = maas.ObjectDetections.model_validate(DETECTIONS)  # e.g. read back from JSON: no image held
    page = result._repr_html_()
    assert "<img" not in page and page.count("<rect") == 2 and "aspect-ratio:200/100" in page
    result._attach_images([(b"II*\x00tiff", "image/tiff")])  # browsers show no TIFF: boxes on gray
    assert "<img" not in result._repr_html_()
    empty = maas.ObjectDetections.model_validate({"data": [{"index": 0, "width": 8, "height": 8, "objects": []}]})
    assert "nothing found" in empty._repr_html_() and empty.objects == []


ROLES = {
    "object": "list", "model": "srl-dependency-rules",
    "data": [{"index": 0, "method": "dependency-rules",
              "words": ["The", "<b>boy</b>", "broke", "the", "window", "yesterday"],
              "verbs": [{"verb": "broke", "start": 13, "end": 18,
                         "tags": ["B-ARG0", "I-ARG0", "B-V", "B-ARG1", "I-ARG1", "B-ARGM-TMP"],
                         "description": "[ARG0: The boy] [V: broke] [ARG1: the window] [ARGM-TMP: yesterday]"}]}],
}


def test_role_html_marks_each_argument_with_its_role_over_the_words() -> None:
    page = maas.RoleLabellings.model_validate(ROLES)._repr_html_()
    marks = re.findall(r"<mark[^>]*>(.*?)<span[^>]*>(.*?)</span></mark>", page)
    assert marks == [("The &lt;b&gt;boy&lt;/b&gt;", "ARG0"), ("broke", "V"), ("the window", "ARG1"),
                     ("yesterday", "ARGM-TMP")]
    assert "<b>boy</b>" not in page


def test_role_html_falls_back_to_the_description_when_tags_do_not_fit_the_words() -> None:
    broken = {**ROLES, "data": [{**ROLES["data"][0], "verbs": [{**ROLES["data"][0]["verbs"][0], "tags": ["B-V"]}]}]}
    page = maas.RoleLabellings.model_validate(broken)._repr_html_()
    assert "<mark" not in page and "[ARG0: The boy]" in page


def test_scene_html_shows_the_label_method_and_evidence_bars() -> None:
    scenes = maas.Scenes.model_validate({
        "object": "list", "model": "efficientnet-lite0", "detector": "yolo",
        "data": [{"index": 0, "top_level": "indoor", "label": "cafe", "score": 0.6, "method": "heuristic",
                  "evidence": [{"source": "imagenet", "label": "<i>espresso</i>", "score": 0.5},
                               {"source": "coco", "label": "cup", "score": 1.7}]},
                 {"index": 1, "method": "heuristic", "evidence": []}]})
    page = scenes._repr_html_()
    assert "cafe (indoor) 0.60" in page and "[heuristic]" in page and "efficientnet-lite0 + yolo" in page
    assert "&lt;i&gt;espresso&lt;/i&gt;" in page and "<i>espresso</i>" not in page
    assert re.findall(r"width:(\d+)px", page) == ["60", "120"]  # a score's bar, capped at its full width
    assert "no scene label" in page
