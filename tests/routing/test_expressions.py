"""The target expression language: what it accepts, how it evaluates, and where it says a bad one breaks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kefu.routing.expressions import ExpressionError, parse

AGENT = {"skills": {"returns": 3, "large_appliance": 2}, "languages": ["zh", "en"], "groups": ["售后"],
         "vip": True, "level": "senior"}


@pytest.mark.parametrize(("text", "task", "expected"), [
    ("skills.returns >= 2 AND languages HAS task.language", {"language": "zh"}, True),
    ("skills.returns >= 2 AND languages HAS task.language", {"language": "ja"}, False),
    ("skills.large_appliance > 2 OR vip == true", {}, True),
    ("NOT vip", {}, False),
    ("skills.fresh_food >= 1", {}, False),  # a missing skill is null, and null >= 1 is false (no error)
    ("task.category IN ['fresh_food', 'large_appliance'] AND skills.large_appliance >= 2",
     {"category": "large_appliance"}, True),
    ("task.category NOT IN ['fresh_food']", {"category": "shoes"}, True),
    ("groups HAS '售后'", {}, True),
    ("level = 'SENIOR'", {}, True),  # strings compare case-insensitively
    ("task.vip_level >= 3 AND (vip OR skills.returns >= 5)", {"vip_level": 4}, True),
    ("task.intent CONTAINS 'refund'", {"intent": "refund_status"}, True),
    ("skills HAS 'returns'", {}, True),
    ("languages HAS task.languages", {"languages": ["fr", "en"]}, True),  # list vs list: any overlap
    ("skills.returns == '3'", {}, False),  # no implicit type conversion
])
def test_expressions_evaluate_against_agent_and_task(text: str, task: dict, expected: bool) -> None:
    assert parse(text).evaluate(AGENT, task) is expected


def test_expressions_list_the_task_attributes_they_read() -> None:
    assert parse("skills.returns >= 2 AND languages HAS task.language OR task.order.category == 'x'").task_paths == (
        ("language",), ("order", "category"))


@pytest.mark.parametrize(("text", "reason", "position"), [
    ("skills.returns >= ", "unexpected_end", 18),
    ("skills.returns >= 2 AND", "unexpected_end", 23),
    ("(skills.returns >= 2", "expected_closing_parenthesis", 20),
    ("skills.returns $ 2", "unexpected_character", 15),
    ("skills.returns >= 2 languages", "unexpected_token", 20),
    ("", "empty_expression", 0),
    ("languages HAS ['zh', task.x]", "expected_literal", 21),
    ("a == 'unterminated", "unexpected_character", 5),
    ("AND vip", "expected_value", 0),
])
def test_bad_expressions_say_where_they_break(text: str, reason: str, position: int) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse(text)
    assert (caught.value.reason, caught.value.position) == (reason, position)


def test_deep_nesting_is_refused_instead_of_exhausting_the_stack() -> None:
    with pytest.raises(ExpressionError) as caught:
        parse("(" * 100 + "vip" + ")" * 100)
    assert caught.value.reason == "too_deeply_nested"


@given(st.text(max_size=80))
def test_any_text_either_parses_or_fails_with_a_position_inside_it(text: str) -> None:
    try:
        expression = parse(text)
    except ExpressionError as error:
        assert 0 <= error.position <= len(text)
    else:
        assert isinstance(expression.evaluate(AGENT, {"language": "zh"}), bool)
