"""Every template failure is a TemplateError naming the template, the line, and a way out."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from atdak_agents.exceptions import DefinitionError, TemplateError
from atdak_agents.templates import PromptTemplate


def render_error(source: str, name: str = "t", **values: object) -> TemplateError:
    template = PromptTemplate(source, name=name)
    with pytest.raises(TemplateError) as caught:
        template.render_messages(values)
    return caught.value


# ---------------------------------------------------------------------- undefined values


def test_missing_variable_names_it_the_template_the_line_and_the_closest_name() -> None:
    error = render_error("Answer briefly.\n\nQ: {{ questoin }}", name="classify", question="?")
    assert str(error).startswith(
        "classify:3: undefined variable 'questoin' (did you mean 'question'?)"
    )
    assert (error.template, error.line) == ("classify", 3)
    assert (error.variable, error.suggestion) == ("questoin", "question")
    assert isinstance(error, DefinitionError)


def test_missing_variable_without_a_close_name_says_how_to_fix_it() -> None:
    error = render_error("{{ a }} {{ zzz }}", a=1, b=2)
    assert "undefined variable 'zzz'; variables given: a, b." in str(error)
    assert "{{ zzz | default('') }}" in str(error)
    assert error.suggestion is None


def test_missing_key_of_a_dict_names_the_full_path_and_suggests_the_key() -> None:
    error = render_error(
        "{{ inputs.customer }}\n{{ inputs.questoin | upper }}",
        inputs={"customer": "c1", "question": "q"},
    )
    assert str(error) == (
        "t:2: undefined variable 'inputs.questoin' (did you mean 'inputs.question'?); "
        "inputs has: customer, question"
    )
    assert (error.variable, error.suggestion, error.line) == (
        "inputs.questoin",
        "inputs.question",
        2,
    )


def test_missing_key_by_subscript_and_deeper_path() -> None:
    error = render_error("{{ state['drafts'][0].txt }}", state={"drafts": [{"text": "d"}]})
    assert "undefined variable 'state.drafts[0].txt' (did you mean 'state.drafts[0].text'?)" in (
        str(error)
    )


def test_missing_attribute_of_a_pydantic_model_suggests_a_field() -> None:
    class Order(BaseModel):
        order_id: str
        status: str

    error = render_error("{{ order.stauts }}", order=Order(order_id="1", status="paid"))
    assert "undefined variable 'order.stauts' (did you mean 'order.status'?)" in str(error)
    assert "order has: order_id, status" in str(error)


def test_index_out_of_range_says_how_long_the_list_is() -> None:
    error = render_error("{{ state.drafts[-1] }}", state={"drafts": []})
    assert str(error) == (
        "t:1: undefined variable 'state.drafts[-1]': index -1 is out of range, the list has 0 items"
    )


def test_typo_of_a_loop_variable_suggests_the_loop_variable() -> None:
    error = render_error("{% for item in items %}\n{{ itme.name }}\n{% endfor %}", items=[{}])
    assert "t:2: undefined variable 'itme' (did you mean 'item'?)" in str(error)


def test_missing_variable_in_an_included_file_names_that_file(tmp_path: Path) -> None:
    (tmp_path / "main.j2").write_text('line 1\n{% include "part.j2" %}\n', encoding="utf-8")
    (tmp_path / "part.j2").write_text("ok\nHello {{ usr.name }}\n", encoding="utf-8")
    template = PromptTemplate.from_file(tmp_path / "main.j2")
    with pytest.raises(TemplateError) as caught:
        template.render(usr={"nme": "x"})
    part = str(tmp_path / "part.j2")
    assert str(caught.value).startswith(f"{part}:2: undefined variable 'usr.name'")
    assert (caught.value.template, caught.value.line) == (part, 2)


@pytest.mark.parametrize(
    "source",
    [
        "{{ x + 1 }}",
        "{% for a in x %}{% endfor %}",
        "{% if x %}{% endif %}",
        "{{ x | tojson }}",
        "{{ x | truncate_tokens(5) }}",
        "{{ x | bullets }}",
        "{{ {'k': x} | tojson }}",
        "{{ x == 1 }}",
        "{{ x[0] }}",
        "{{ x() }}",
        "{{ 'a' in x }}",
    ],
)
def test_every_use_of_a_missing_value_fails_naming_it(source: str) -> None:
    error = render_error(source, y=1)
    assert "undefined variable 'x'" in str(error)


def test_optional_values_with_default_or_defined_render() -> None:
    source = "{{ tone | default('neutral') }}{% if extra is defined %} {{ extra }}{% endif %}"
    assert PromptTemplate(source).render() == "neutral"
    assert PromptTemplate(source).render(tone="warm", extra="!") == "warm !"


def test_user_mistakes_do_not_chain_a_python_traceback() -> None:
    error = render_error("{{ missing }}")
    assert error.__cause__ is None


def test_an_exception_from_a_value_names_the_line_and_keeps_the_cause() -> None:
    class Flaky:
        def read(self) -> str:
            raise RuntimeError("disk on fire")

    error = render_error("ok\n{{ f.read() }}", f=Flaky())
    assert str(error) == "t:2: RuntimeError: disk on fire"
    assert isinstance(error.__cause__, RuntimeError)


# ---------------------------------------------------------------------- syntax


def compile_error(source: str, name: str = "t") -> TemplateError:
    with pytest.raises(TemplateError) as caught:
        PromptTemplate(source, name=name)
    return caught.value


def test_syntax_error_names_the_template_and_line() -> None:
    error = compile_error("ok\n{% if x %}\nyes\n", name="bad")
    assert str(error).startswith("bad:3: syntax error: Unexpected end of template.")
    assert "'endif'" in str(error)
    assert (error.template, error.line) == ("bad", 3)


def test_unknown_tag_suggests_the_role_block() -> None:
    error = compile_error("{% sytem %}x{% endsytem %}")
    assert str(error) == (
        "t:1: syntax error: Encountered unknown tag 'sytem'. Did you mean {% system %}?"
    )


def test_unclosed_role_block() -> None:
    error = compile_error("{% user %}\nhello\n")
    assert "t:2: syntax error" in str(error)
    assert "enduser" in str(error)


def test_nested_role_blocks_are_refused_at_compile_time() -> None:
    error = compile_error("{% user %}\n{% system %}x{% endsystem %}\n{% enduser %}")
    assert str(error) == (
        "t:2: syntax error: role blocks cannot be nested: close the {% user %} block (line 1) "
        "before opening another"
    )


def test_nested_role_blocks_through_a_macro_are_refused_when_rendering() -> None:
    source = (
        "{% macro sys() %}{% system %}x{% endsystem %}{% endmacro %}\n"
        "{% user %}{{ sys() }}{% enduser %}"
    )
    error = render_error(source)
    assert "t:1: role blocks cannot be nested" in str(error)


def test_text_outside_role_blocks_is_refused_with_its_line() -> None:
    error = compile_error("{% system %}s{% endsystem %}\nstray words\n{% user %}u{% enduser %}")
    assert str(error).startswith("t:2: text outside the role blocks")


def test_text_outside_role_blocks_written_by_a_call_is_refused_when_rendering() -> None:
    source = "{% macro word() %}stray{% endmacro %}{% user %}u{% enduser %}{{ word() }}"
    error = render_error(source)
    assert "text outside the role blocks ('stray')" in str(error)


def test_message_block_with_an_unknown_role() -> None:
    error = render_error("{% message r %}x{% endmessage %}", r="tool")
    assert str(error) == "t:1: unknown message role 'tool': use one of system, user, assistant"


# ---------------------------------------------------------------------- files


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"missing\.j2: template file not found"):
        PromptTemplate.from_file(tmp_path / "missing.j2")


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.j2"
    path.write_bytes("café {{ x }}".encode("latin-1"))
    with pytest.raises(TemplateError, match="not a UTF-8 text file"):
        PromptTemplate.from_file(path)


def test_missing_include_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "main.j2").write_text('a\n{% include "nope.j2" %}\n', encoding="utf-8")
    template = PromptTemplate.from_file(tmp_path / "main.j2")
    with pytest.raises(TemplateError) as caught:
        template.render()
    assert str(caught.value) == (
        f"{tmp_path / 'main.j2'}:2: included template 'nope.j2' not found in the search path "
        f"{tmp_path}"
    )


def test_include_without_a_search_path_says_to_give_one() -> None:
    template = PromptTemplate('{% include "part.j2" %}', name="inline")
    with pytest.raises(TemplateError) as caught:
        template.render()
    assert str(caught.value) == (
        "inline:1: included template 'part.j2' not found "
        "(no search path: give the template search_path=[folder, ...])"
    )


def test_syntax_error_in_an_included_file_names_that_file(tmp_path: Path) -> None:
    (tmp_path / "main.j2").write_text('{% include "part.j2" %}\n', encoding="utf-8")
    (tmp_path / "part.j2").write_text("a\n{{ x \n", encoding="utf-8")
    template = PromptTemplate.from_file(tmp_path / "main.j2")
    with pytest.raises(TemplateError, match=r"part\.j2:\d: syntax error"):
        template.render(x=1)
