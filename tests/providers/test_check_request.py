"""check_request (what a client checks of a request it is given whole) decides exactly as the
full check of every field: the shortcut for a request with no numbers set changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atdak_agents.exceptions import InvalidParameterError
from atdak_agents.messages import Message
from atdak_agents.providers._request import _CHECKED, _check_fields, check_request
from atdak_agents.providers._wire import ChatCompletionRequest
from atdak_agents.providers.profiles import default_registry

USER = [Message(role="user", content="hi")]
values = st.one_of(
    st.none(),
    st.floats(allow_nan=True),
    st.integers(min_value=-5, max_value=300_000),
    st.booleans(),
    st.sampled_from(["0.5", "", [1]]),
)


def outcome(check: Any, request: ChatCompletionRequest) -> tuple[str, ...]:
    try:
        check(request)
    except InvalidParameterError as exc:
        return ("refused", str(exc))
    return ("accepted",)


def full(request: ChatCompletionRequest) -> None:
    """Every field checked (what check_request did for every request before)."""
    if not request.messages:
        raise InvalidParameterError("messages", request.messages, "non-empty")
    fields = {name: getattr(request, name) for name in _CHECKED}
    _check_fields(request.model, fields, default_registry)


@settings(max_examples=400, deadline=None)
@given(
    model=st.sampled_from(["atdak-gpt-4-mini", "unknown-model", "", "  ", 3]),
    fields=st.fixed_dictionaries(dict.fromkeys(_CHECKED, values)),
    unset=st.sets(st.sampled_from(_CHECKED)),
)
def test_the_shortcut_decides_as_the_full_check(
    model: Any, fields: dict[str, Any], unset: set[str]
) -> None:
    chosen = {k: (None if k in unset else v) for k, v in fields.items()}
    request = ChatCompletionRequest.model_construct(model=model, messages=USER, **chosen)
    assert outcome(lambda r: check_request(r, default_registry), request) == outcome(full, request)


@pytest.mark.parametrize("model", ["", "  ", None, 7])
def test_a_request_without_numbers_still_needs_a_model_name(model: Any) -> None:
    request = ChatCompletionRequest.model_construct(model=model, messages=USER)
    with pytest.raises(InvalidParameterError, match="model"):
        check_request(request, default_registry)


def test_a_request_without_numbers_and_a_model_passes() -> None:
    check_request(ChatCompletionRequest(model="atdak-gpt-4", messages=USER), default_registry)
