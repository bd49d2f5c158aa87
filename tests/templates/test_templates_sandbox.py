"""The sandbox: templates read values, never reach Python internals nor change the data."""

from __future__ import annotations

import pytest

from atdak_agents.exceptions import TemplateError
from atdak_agents.templates import PromptTemplate


class Account:
    """A value object with a public method, a private attribute and a class-level reference."""

    def __init__(self) -> None:
        self._secret = "hunter2"
        self.owner = "ada"

    def describe(self) -> str:
        return f"account of {self.owner}"


def refusal(source: str, **values: object) -> str:
    template = PromptTemplate(source, name="attack")
    with pytest.raises(TemplateError) as caught:
        template.render(values)
    return str(caught.value)


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ ''.__class__.__base__.__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.system('id') }}",
        "{{ joiner.__init__.__globals__ }}",
        "{{ lipsum.__globals__['os'] }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ self.__init__.__globals__ }}",
        "{{ self._TemplateReference__context }}",
        "{{ range.__globals__ }}",
        "{{ account._secret }}",
        "{{ account.describe.__func__.__globals__ }}",
        "{{ account.__dict__ }}",
        "{{ account['__class__'] }}",
        "{{ kind.mro() }}",
        "{{ gen.gi_frame.f_globals }}",
    ],
)
def test_attribute_tricks_reaching_python_internals_are_refused(source: str) -> None:
    message = refusal(source, account=Account(), kind=int, gen=(i for i in range(2)))
    assert message.startswith("attack:1: refused by the sandbox: access to attribute")
    assert "is unsafe" in message


@pytest.mark.parametrize(
    "source",
    [
        "{{ '{0.__class__.__init__.__globals__}'.format(account) }}",
        "{{ '{a._secret}'.format_map({'a': account}) }}",
        "{{ '{0.describe.__globals__}'.format(account) }}",
    ],
)
def test_format_string_tricks_are_refused(source: str) -> None:
    message = refusal(source, account=Account())
    assert message.startswith("attack:1: refused by the sandbox: access to attribute")


@pytest.mark.parametrize(
    "source",
    [
        "{{ state.drafts.append('injected') }}",
        "{{ state.update({'approved': true}) }}",
        "{{ state.drafts.clear() }}",
        "{{ state.pop('drafts') }}",
    ],
)
def test_templates_cannot_change_the_data_they_read(source: str) -> None:
    state = {"drafts": ["first"], "approved": False}
    message = refusal(source, state=state)
    assert "refused by the sandbox" in message
    assert state == {"drafts": ["first"], "approved": False}


def test_huge_repetitions_and_powers_are_refused_without_building_them() -> None:
    assert "a repetition would build 1,000,000,000 items" in refusal("{{ 'a' * 10**9 }}")
    assert "a repetition would build" in refusal("{{ [0] * n }}", n=10**12)
    assert "would build a number of about" in refusal("{{ 2 ** 100000 }}")
    assert "Range too big" in refusal("{{ range(10**9) | list | length }}")


def test_reasonable_arithmetic_and_public_methods_still_work() -> None:
    template = PromptTemplate("{{ '-' * 3 }} {{ 2 ** 10 }} {{ account.describe() }} {{ n * 2 }}")
    assert template.render(account=Account(), n=21) == "--- 1024 account of ada 42"


def test_values_are_not_evaluated_even_when_they_contain_attacks() -> None:
    attack = "{{ cycler.__init__.__globals__.os.system('id') }}"
    assert PromptTemplate("{{ v }}").render(v=attack) == attack


def test_mapping_keys_win_over_dict_methods() -> None:
    from atdak_agents.templates import PromptTemplate, compile_expression

    state = {"items": [1, 2], "keys": "k"}
    assert PromptTemplate("{{ state.items }} {{ state.keys }}").render(state=state) == "[1, 2] k"
    assert compile_expression("state.items")(state=state) == [1, 2]
    assert compile_expression("state.get('keys')")(state=state) == "k"
