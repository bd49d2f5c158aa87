"""Function nodes of the ``translate_glossary`` recipe: the glossary and the consistency check.

The check is plain Python, not a model: for each glossary term whose source appears in the
text, the translation must contain the target term (English matched as whole words, plurals
allowed, any case); and a glossary term whose source does *not* appear must not show up in the
translation (a sign that a wrong term was used, e.g. "clearing" for 结算).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

LANGUAGES = ("zh", "en")


def load_glossary(inputs: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """The glossary's terms for this direction, and those the source text requires."""
    source, target = inputs["source_lang"], inputs["target_lang"]
    if {source, target} != set(LANGUAGES):
        raise ValueError(f"translate between zh and en (got {source!r} → {target!r})")
    base = context.env.base_dir or Path.cwd()
    data = yaml.safe_load((Path(base) / inputs["glossary"]).read_text(encoding="utf-8"))
    glossary = [{"source": t[source], "target": t[target]} for t in data["terms"]]
    required = [t for t in glossary if contains(inputs["text"], t["source"], source)]
    return {"glossary": glossary, "terms": required}


def check_terms(state: Mapping[str, Any], inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The glossary problems of the current translation (an empty list: consistent)."""
    text, translation = inputs["text"], state["translation"]
    source, target = inputs["source_lang"], inputs["target_lang"]
    problems = []
    for term in state["glossary"]:
        in_source = contains(text, term["source"], source)
        in_translation = contains(translation, term["target"], target)
        if in_source and not in_translation:
            problems.append(f'「{term["source"]}」 must be translated as "{term["target"]}"')
        elif in_translation and not in_source:
            problems.append(
                f'"{term["target"]}" is the glossary term for 「{term["source"]}」, which the '
                "source does not contain: use another word"
            )
    return {"problems": problems, "checks": {"problems": problems}}


def contains(text: str, term: str, language: str) -> bool:
    """Whether ``term`` occurs in ``text``: Chinese as a substring, English as whole words
    (any case, a plural ending allowed)."""
    if language == "zh":
        return term in text
    words = r"\s+".join(re.escape(word) for word in term.split())
    return re.search(rf"\b{words}(?:s|es)?\b", text, re.IGNORECASE) is not None
