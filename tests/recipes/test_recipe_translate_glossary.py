"""recipes/translate_glossary.yaml: a glossary as data, checked in Python, fixed when broken."""

from __future__ import annotations

from pathlib import Path

import pytest
from recipe_harness import recipe_function, run_recipe

from atdak_agents.testing.fixtures import loads_fixture

contains = recipe_function("glossary_steps:contains")

NOTICE_EN = (
    "Refunds are credited within 3 business days; for a chargeback, the acquirer notifies "
    "the merchant."
)


async def test_a_wrong_term_is_found_and_fixed(recipes: Path) -> None:
    outcome = await run_recipe(recipes, "translate_glossary")
    result = outcome.result
    assert result.status == "done"
    assert outcome.nodes_run() == ["load_glossary", "translate", "check", "fix", "check"]
    required = {t["source"]: t["target"] for t in result.state["terms"]}
    assert required == {
        "商户": "merchant",
        "结算": "settlement",
        "对账": "reconciliation",
        "手续费": "processing fee",
        "退款": "refund",
        "拒付": "chargeback",
        "工作日": "business day",
    }
    assert all(f"- {zh} → {en}" in outcome.texts[0] for zh, en in required.items())
    first, second = (check["problems"] for check in result.state["checks"])
    assert first == [
        '「结算」 must be translated as "settlement"',
        '"clearing" is the glossary term for 「清算」, which the source does not contain: '
        "use another word",
        '「手续费」 must be translated as "processing fee"',
    ]
    assert second == []
    fix_request = outcome.texts[1]
    assert all(f"- {problem}" in fix_request for problem in first)
    translation = result.output["translation"]
    assert result.output == {"translation": translation, "consistent": True, "checks": 2}
    assert all(contains(translation, en, "en") for en in required.values())
    assert not contains(translation, "clearing", "en")


async def test_english_to_chinese_uses_the_same_glossary(recipes: Path) -> None:
    inputs = {"text": NOTICE_EN, "source_lang": "en", "target_lang": "zh"}
    outcome = await run_recipe(recipes, "translate_glossary", inputs)
    result = outcome.result
    assert result.status == "done"
    targets = [term["target"] for term in result.state["terms"]]
    assert targets == ["商户", "退款", "拒付", "收单机构", "工作日"]
    assert "into\nSimplified Chinese" in outcome.texts[0]
    assert result.output["consistent"] is True and result.output["checks"] == 1


async def test_a_translator_that_never_fixes_it_stops_after_two_fixes(recipes: Path) -> None:
    stubborn = loads_fixture(
        """
replies:
  - when: Translate the text
    reply: "Dear merchant: the handling fee for T+1 clearing changes."
  - when: This translation breaks the client's glossary
    times: 0
    reply: "Dear merchant: the handling fee for T+1 clearing changes."
""",
        name="stubborn.fixture.yaml",
    )
    outcome = await run_recipe(recipes, "translate_glossary", responder=stubborn)
    result = outcome.result
    assert result.status == "done"
    assert [n for n in outcome.nodes_run() if n == "fix"] == ["fix", "fix"]
    assert result.output["consistent"] is False and result.output["checks"] == 3
    assert result.state["problems"]  # the last check's problems are kept for a person to see


async def test_an_unsupported_language_pair_is_refused(recipes: Path) -> None:
    inputs = {"text": "Bonjour", "source_lang": "fr", "target_lang": "en"}
    outcome = await run_recipe(recipes, "translate_glossary", inputs)
    assert outcome.result.status == "failed"
    assert "translate between zh and en" in (outcome.result.error or "")
    assert outcome.requests == []


@pytest.mark.parametrize(
    ("text", "term", "found"),
    [
        ("Refunds are credited", "refund", True),
        ("three business days", "business day", True),
        ("three business\ndays", "business day", True),
        ("PROCESSING FEE", "processing fee", True),
        ("merchantability", "merchant", False),
        ("settlements", "settlement", True),
        ("no fee here", "processing fee", False),
    ],
)
def test_english_terms_match_as_whole_words(text: str, term: str, found: bool) -> None:
    assert contains(text, term, "en") is found
