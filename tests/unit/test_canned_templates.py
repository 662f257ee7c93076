"""Canned reply variables (``core.store.canned_templates``) and search normalization: what parses,
what is refused and why, and that rendering substitutes plain text only."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.store import canned_templates as t
from core.store.canned_replies import normalized


def test_variables_render_with_their_values_and_missing_ones_empty() -> None:
    template = t.parse(
        "Hi {customer.name}, {agent.name} here. Plan: {customer.fields.plan}{{!}}", {"plan"}
    )
    assert template.variables == ("customer.name", "agent.name", "customer.fields.plan")
    rendered = t.render(template, {"customer.name": "Mei", "agent.name": "Ann"})
    assert rendered.text == "Hi Mei, Ann here. Plan: {!}"
    assert rendered.missing == ("customer.fields.plan",)


def test_spaces_inside_braces_are_allowed() -> None:
    assert t.parse("{ customer.email }").variables == ("customer.email",)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{customer.nmae}", "unknown variable 'customer.nmae'"),
        ("{customer.name!r}", "unknown variable"),
        ("{customer.name:>99999}", "unknown variable"),
        ("{customer.__class__.__init__}", "unknown variable"),
        ("{0}", "unknown variable"),
        ("{}", "unknown variable"),
        ("{customer.fields.other}", "unknown variable 'customer.fields.other'"),
        ("{customer.fields.Plan}", "unknown variable"),
        ("open { but never closed", "a lone '{' at character 5"),
        ("closed } but never opened", "a lone '}'"),
        ("{a{customer.name}", "a lone '{'"),
    ],
)
def test_anything_else_in_braces_is_refused(text: str, problem: str) -> None:
    with pytest.raises(t.TemplateError) as refused:
        t.parse(text, {"plan"})
    assert any(problem in p for p in refused.value.problems)


def test_every_problem_is_listed_and_long_names_are_cut() -> None:
    with pytest.raises(t.TemplateError) as refused:
        t.parse("{x} and {" + "y" * 500 + "} and }")
    problems = refused.value.problems
    assert len(problems) == 3
    assert all(len(p) < 120 for p in problems)


def test_too_many_variables_are_refused() -> None:
    with pytest.raises(t.TemplateError):
        t.parse("{agent.name}" * (t.MAX_VARIABLES + 1))


def test_none_accepts_any_well_formed_field_for_texts_saved_before() -> None:
    assert t.parse("{customer.fields.gone}", None).variables == ("customer.fields.gone",)
    with pytest.raises(t.TemplateError):
        t.parse("{customer.fields.Not-A-Key}", None)


@given(st.text(max_size=200))
def test_values_are_inserted_verbatim_and_never_read_again(value: str) -> None:
    template = t.parse("<{customer.name}|{agent.name}>")
    rendered = t.render(template, {"customer.name": value, "agent.name": "{customer.name}"})
    assert rendered.text == f"<{value}|{{customer.name}}>"


@given(st.text(max_size=200))
def test_a_text_without_braces_renders_as_itself(text: str) -> None:
    plain = text.replace("{", "").replace("}", "")
    assert t.render(t.parse(plain), {}).text == plain


def test_search_normalizes_width_case_and_spaces_but_not_scripts() -> None:
    assert normalized("  ＲＥＦＵＮＤ\tPolicy ") == "refund policy"
    assert normalized("退款政策") == "退款政策"
    assert normalized("คืนเงิน") == normalized("คืนเงิน")
    assert normalized("Straße") == "strasse"
