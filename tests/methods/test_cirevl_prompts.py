"""CIReVL's per-dataset rewrite prompts (cirkit's own text): each renders the reference caption and the
instruction into its last user turn, asks for the official "Edited Description:" line, and its answers parse
with the official answer format (the line's text, cut at the first blank line)."""

import pytest

from cirkit.models.prompts import PromptConfig, load_template
from cirkit.models.requests import ChatResponse
from cirkit.models.roles import ParseConfig, parse_answers

STYLES = ("structural", "contextual", "fashion", "short")


@pytest.mark.parametrize("style", STYLES)
def test_each_style_renders_its_inputs_and_asks_for_the_edited_description_line(style):
    template = load_template(PromptConfig(f"cirevl/{style}"))
    turns = template.render(reference="a red car on a road", instruction="make it blue")
    assert turns[-1][0] == "user" and "a red car on a road" in turns[-1][1] and "make it blue" in turns[-1][1]
    assert "Edited Description:" in turns[0][1]
    examples = [text for role, text in turns if role == "assistant"]
    assert examples and all(text.splitlines()[-1].startswith("Edited Description: ") for text in examples)
    assert template.source == f"cirkit/methods/cirevl/prompts/{style}.txt"


def test_the_styles_are_different_prompts():
    assert len({load_template(PromptConfig(f"cirevl/{s}")).hash for s in STYLES}) == len(STYLES)


def test_an_answer_in_the_prompts_format_parses_to_the_description_line(tmp_path):
    from cirkit.engine import Engine, Store

    answer = "Reasoning: the colour changes.\nEdited Description: a blue car on a road\n\nAnything after a blank line"
    responses = (ChatResponse(answer, "m", "stop"),)
    parsed = Engine(Store(str(tmp_path)), progress=False).run(
        parse_answers, ParseConfig("labelled_line", ("target",), label="Edited Description"), responses=responses,
        fallbacks="fallback").value
    assert parsed.values == ({"target": "a blue car on a road"},) and parsed.ok == (True,)
