"""Benchmark: rendering prompt templates, against plain jinja2 and hand-written Python.

Run on demand: ``.venv/bin/python tests/benchmarks/bench_templates.py``.

Measured in one run, microseconds per operation (best of several repeats):

- a plain text prompt: ``str.format`` (the floor), plain jinja2 (``Environment`` with the default
  lenient undefined, no sandbox), and ``PromptTemplate.render`` (sandbox, strict undefined,
  error mapping);
- a chat prompt (system + 3 few-shot pairs + user, with ``tojson``): hand-written Python building
  the ``Message`` list (the floor), plain jinja2 rendering the same text as one string, and
  ``PromptTemplate.render_messages``;
- building a template: a fresh compile by jinja2 and ``PromptTemplate(...)`` for a source already
  compiled (the cache).

Printed with ratios against the baselines.
"""

from __future__ import annotations

import json
import timeit
from collections.abc import Callable

import jinja2

from atdak_agents.messages import Message
from atdak_agents.templates import PromptTemplate
from atdak_agents.templates._chat import RoleBlocks  # so plain jinja2 compiles the same source

VALUES = {
    "company": "Atdak",
    "question": "我的订单 #10423 三天了还没发货，能退款吗？",
    "order": {"id": 10423, "status": "paid", "city": "北京", "items": ["茶", "杯子"]},
    "examples": [
        {"q": "Where is my order?", "a": "Let me look it up."},
        {"q": "Can I change the address?", "a": "Yes, before it ships."},
        {"q": "退款要多久？", "a": "通常三到五个工作日。"},
    ],
}

PLAIN = "You are {{ company }}'s support agent.\nOrder: {{ order.id }}\nQuestion: {{ question }}"
PLAIN_FORMAT = "You are {company}'s support agent.\nOrder: {order_id}\nQuestion: {question}"

CHAT = """\
{% system %}
You are {{ company }}'s support agent. Be brief.
Order: {{ order | tojson }}
{% endsystem %}
{% for ex in examples %}
{% user %}{{ ex.q }}{% enduser %}
{% assistant %}{{ ex.a }}{% endassistant %}
{% endfor %}
{% user %}{{ question }}{% enduser %}
"""

CHAT_AS_TEXT = """\
You are {{ company }}'s support agent. Be brief.
Order: {{ order | tojson }}
{% for ex in examples %}
{{ ex.q }}
{{ ex.a }}
{% endfor %}
{{ question }}
"""


CHAT_OURS = "chat: PromptTemplate.render_messages"


def by_hand() -> list[Message]:
    system = (
        f"You are {VALUES['company']}'s support agent. Be brief.\n"
        f"Order: {json.dumps(VALUES['order'], ensure_ascii=False)}"
    )
    messages = [Message(role="system", content=system)]
    for ex in VALUES["examples"]:  # type: ignore[union-attr]
        messages.append(Message(role="user", content=ex["q"]))  # type: ignore[index]
        messages.append(Message(role="assistant", content=ex["a"]))  # type: ignore[index]
    messages.append(Message(role="user", content=str(VALUES["question"])))
    return messages


def best_us(function: Callable[[], object], number: int) -> float:
    """Microseconds per call, best of 7 repeats of ``number`` calls."""
    return min(timeit.repeat(function, number=number, repeat=7)) / number * 1e6


def main() -> None:
    plain_env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, extensions=[RoleBlocks])
    jinja_plain = plain_env.from_string(PLAIN)
    jinja_chat_text = plain_env.from_string(CHAT_AS_TEXT)
    plain = PromptTemplate(PLAIN, name="plain")
    chat = PromptTemplate(CHAT, name="chat")
    assert chat.render_messages(VALUES) == by_hand()

    order_id = VALUES["order"]["id"]  # type: ignore[index]
    rows = [
        ("plain: str.format (floor)", lambda: PLAIN_FORMAT.format(order_id=order_id, **VALUES)),
        ("plain: jinja2, no sandbox", lambda: jinja_plain.render(VALUES)),
        ("plain: PromptTemplate.render", lambda: plain.render(VALUES)),
        ("chat: Messages by hand (floor)", by_hand),
        ("chat: jinja2 text, no sandbox", lambda: jinja_chat_text.render(VALUES)),
        (CHAT_OURS, lambda: chat.render_messages(VALUES)),
        ("build: jinja2 compile", lambda: plain_env.from_string(CHAT)),
        ("build: PromptTemplate, cached", lambda: PromptTemplate(CHAT, name="chat")),
    ]
    results = {label: best_us(fn, 2000 if "compile" not in label else 200) for label, fn in rows}
    for label, micros in results.items():
        print(f"{label:<40} {micros:9.2f} µs")
    print()
    ratios = [
        ("plain render / str.format", "plain: PromptTemplate.render", "plain: str.format (floor)"),
        ("plain render / jinja2", "plain: PromptTemplate.render", "plain: jinja2, no sandbox"),
        ("chat render / by hand", CHAT_OURS, "chat: Messages by hand (floor)"),
        ("chat render / jinja2 text", CHAT_OURS, "chat: jinja2 text, no sandbox"),
    ]
    for name, ours, base in ratios:
        print(f"{name:<40} {results[ours] / results[base]:9.2f}x")
    speedup = results["build: jinja2 compile"] / results["build: PromptTemplate, cached"]
    print(f"{'jinja2 compile / cached build':<40} {speedup:9.0f}x")


if __name__ == "__main__":
    main()
