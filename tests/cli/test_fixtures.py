"""The fixture responder: offline replies from NAME.fixture.yaml, over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atdak_agents.exceptions import InternalServerError, WorkflowError
from atdak_agents.testing import LocalAtdakServer
from atdak_agents.testing.fixtures import fixture_path, load_fixture, loads_fixture

FIXTURE = """\
# replies the local Atdak server gives when triage.yaml runs offline
replies:
  - when: "Classify the customer message"
    reply: '{"category": "shipping"}'
  - when: "/order #\\\\d+/"
    reply: {text: "Order 10423 left yesterday.", chunk_size: 3}
    times: 2
  - when: "${NOT_AN_ENV_REFERENCE}"
    reply: "literal ${text}"
    times: 0
  - reply: "anything else"
"""


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You help a shop."}, {"role": "user", "content": text}]


async def ask(server: LocalAtdakServer, text: str, *, stream: bool = False) -> str:
    async with server.async_client(max_retries=0) as client:
        if not stream:
            answer = await client.chat.completions.create(
                model="atdak-gpt-4-mini", messages=user(text)
            )
            return answer.choices[0].message.content or ""
        chunks = await client.chat.completions.create(
            model="atdak-gpt-4-mini", messages=user(text), stream=True
        )
        return "|".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])


async def test_entries_answer_in_file_order_with_their_uses() -> None:
    responder = loads_fixture(FIXTURE, name="triage.fixture.yaml")
    async with LocalAtdakServer(responder) as server:
        assert await ask(server, "Classify the customer message: hi") == '{"category": "shipping"}'
        # used up: the next classification falls through to the entry without `when`
        assert await ask(server, "Classify the customer message: again") == "anything else"
        streamed = await ask(server, "Where is order #10423?", stream=True)
        assert streamed.replace("|", "") == "Order 10423 left yesterday."
        assert streamed.split("|")[:2] == ["Ord", "er "]  # chunk_size: 3
        assert await ask(server, "and order #7?") == "Order 10423 left yesterday."
        # `times: 0` answers any number of requests; ${...} in a fixture is plain text
        for _ in range(3):
            assert await ask(server, "${NOT_AN_ENV_REFERENCE}") == "literal ${text}"
        with pytest.raises(InternalServerError) as failure:
            await ask(server, "Something new entirely")
    message = str(failure.value)
    assert "no reply in triage.fixture.yaml matches" in message
    assert "'You help a shop. Something new entirely'" in message
    assert responder.uses == [1, 2, 3, 1]
    assert responder.unused == []


async def test_an_unmatched_request_names_the_entries_that_are_used_up() -> None:
    responder = loads_fixture(
        'replies:\n  - {when: "weather", reply: "sunny"}\n', name="w.fixture.yaml"
    )
    async with LocalAtdakServer(responder) as server:
        assert await ask(server, "weather today?") == "sunny"
        assert responder.unused == []
        with pytest.raises(InternalServerError, match=r"used up: entry 1 \(line 2\) when 'weath"):
            await ask(server, "weather tomorrow?")


async def test_reply_fields_give_status_codes_and_tool_calls() -> None:
    responder = loads_fixture(
        """
replies:
  - when: tools
    reply:
      tool_calls: [{name: lookup, arguments: {order_id: "10423"}}]
  - reply: {status: 503, error: upstream overloaded, retry_after: 0}
""",
        name="f.fixture.yaml",
    )
    async with LocalAtdakServer(responder, native_tools=True) as server:
        async with server.async_client() as client:
            answer = await client.chat.completions.create(
                model="atdak-gpt-4-mini",
                messages=user("tools please"),
                tools=[{"type": "function", "function": {"name": "lookup", "parameters": {}}}],
            )
            call = answer.choices[0].message.tool_calls[0]  # type: ignore[index]
            assert call.function.name == "lookup"
            assert json.loads(call.function.arguments) == {"order_id": "10423"}
        with pytest.raises(InternalServerError, match="upstream overloaded"):
            await ask(server, "anything")


def test_restore_takes_use_counts_that_fit_the_fixture() -> None:
    responder = loads_fixture(FIXTURE)
    assert responder.restore([1, 0, 0, 0])
    assert [e.when for e in responder.unused][:1] == ["/order #\\d+/"]
    assert not responder.restore([1, 2])  # the file changed since: start over
    assert responder.uses == [1, 0, 0, 0]


def test_every_problem_is_reported_with_its_place() -> None:
    text = """\
replies:
  - when: "/bad[/"
    reply: {category: shipping}
  - reply: {text: 1, faultt: hang, delay: soon}
    tims: 3
  - reply: "fine"
    times: -1
  - just a string
  - when: "x"
extra: 1
"""
    with pytest.raises(WorkflowError) as error:
        loads_fixture(text, name="shop.fixture.yaml")
    lines = [str(problem) for problem in error.value.problems]
    assert lines[0].startswith("shop.fixture.yaml:2:11 replies[0].when: invalid regular expression")
    assert lines[1].startswith(
        "shop.fixture.yaml:3:5 replies[0].reply: a reply mapping holds Reply fields, not "
        "'category' (Reply fields: text, chunks,"
    )
    assert lines[1].endswith(
        """to answer with JSON text, quote it: reply: '{"category": "shipping"}')"""
    )
    assert lines[2:] == [
        "shop.fixture.yaml:4:19 replies[1].reply.text: input should be a valid string",
        "shop.fixture.yaml:4:22 replies[1].reply.faultt: unknown reply field 'faultt' "
        "(did you mean 'fault'?)",
        "shop.fixture.yaml:4:43 replies[1].reply.delay: input should be a valid number, "
        "unable to parse string as a number",
        "shop.fixture.yaml:5:5 replies[1].tims: unknown entry key 'tims' (did you mean 'times'?)",
        "shop.fixture.yaml:7:12 replies[2].times: `times` must be a whole number >= 0 (got -1) "
        "(how many requests the entry answers; 0 means any number)",
        "shop.fixture.yaml:8:5 replies[3]: an entry is a mapping: {when: ..., reply: ..., "
        "times: ...}",
        "shop.fixture.yaml:9:5 replies[4]: missing required key 'reply' (the text (or Reply "
        "fields) to send)",
        "shop.fixture.yaml:10:1 extra: unknown fixture key 'extra' (known: replies)",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "a fixture is a mapping with a `replies:` list"),
        ("replies: []\n", "`replies` must be a non-empty list of entries"),
        ("replies:\n  - reply: !!python/object:os.system x\n", "the tag !!python/object"),
        ("replies:\n\t- reply: x\n", "YAML indents with spaces, never tabs"),
    ],
)
def test_malformed_files_say_what_a_fixture_is(text: str, expected: str) -> None:
    with pytest.raises(WorkflowError, match=expected.replace("(", r"\(").replace("$", r"\$")):
        loads_fixture(text, name="x.fixture.yaml")


def test_the_fixture_lives_next_to_the_workflow(tmp_path: Path) -> None:
    assert fixture_path(tmp_path / "triage.yaml") == tmp_path / "triage.fixture.yaml"
    (tmp_path / "old.fixture.yml").write_text("replies: [{reply: hi}]\n", encoding="utf-8")
    assert fixture_path(tmp_path / "old.yml") == tmp_path / "old.fixture.yml"
    assert load_fixture(tmp_path / "old.fixture.yml").entries[0].reply.text == "hi"
    with pytest.raises(WorkflowError, match=r"missing.fixture.yaml:1:1 cannot read the fixture"):
        load_fixture(tmp_path / "missing.fixture.yaml")
