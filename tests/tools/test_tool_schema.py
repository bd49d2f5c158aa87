"""@tool turns type hints and docstrings into a JSON schema the model can follow."""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field

from atdak_agents.exceptions import ToolDefinitionError
from atdak_agents.tools import RunContext, Tool, tool


class Unit(enum.Enum):
    CELSIUS = "c"
    FAHRENHEIT = "f"


class Address(BaseModel):
    street: str
    city: str = Field(description="City name")


class Order(BaseModel):
    items: list[str]
    ship_to: Address
    title: str = "untitled"  # a property named "title" must survive schema cleaning


def google(city: str, unit: Unit = Unit.CELSIUS, days: int | None = None) -> str:
    """Weather forecast for a city.

    Uses the national weather service.

    Args:
        city: The city, e.g.
            "Paris".
        unit: Temperature unit.
        days (int): How many days ahead.

    Returns:
        The forecast.
    """
    return city


def numpy_style(query: str, limit: int = 5) -> list[str]:
    """Search the catalogue.

    Parameters
    ----------
    query : str
        Words to look for.
    limit : int, optional
        Most results to return.
    """
    return [query] * limit


def sphinx_style(path: str, mode: Literal["r", "w"] = "r") -> str:
    """Open a file.

    :param path: Path of the file.
    :param mode: Open mode.
    :returns: the content
    """
    return path


def test_google_docstring_gives_descriptions_and_types() -> None:
    spec = tool(google).spec()
    assert spec["name"] == "google"
    assert (
        spec["description"] == "Weather forecast for a city.\n\nUses the national weather service."
    )
    props = spec["parameters"]["properties"]
    assert props["city"] == {"type": "string", "description": 'The city, e.g. "Paris".'}
    assert props["unit"]["description"] == "Temperature unit."
    assert props["unit"]["default"] == "c"
    assert spec["parameters"]["$defs"]["Unit"]["enum"] == ["c", "f"]
    assert props["days"]["anyOf"] == [{"type": "integer"}, {"type": "null"}]
    assert spec["parameters"]["required"] == ["city"]
    assert spec["parameters"]["additionalProperties"] is False


def test_numpy_and_sphinx_docstrings() -> None:
    numpy_props = tool(numpy_style).parameters["properties"]
    assert numpy_props["query"]["description"] == "Words to look for."
    assert numpy_props["limit"] == {
        "type": "integer",
        "default": 5,
        "description": "Most results to return.",
    }
    sphinx = tool(sphinx_style)
    assert sphinx.description == "Open a file."
    props = sphinx.parameters["properties"]
    assert props["path"]["description"] == "Path of the file."
    assert props["mode"]["enum"] == ["r", "w"]


def test_nested_models_lists_dicts_and_titles() -> None:
    @tool
    def place(order: Order, notes: dict[str, int], tags: list[str] | None = None) -> None:
        """Place an order."""

    params = place.parameters
    assert "title" not in params
    assert params["properties"]["order"] == {"$ref": "#/$defs/Order"}
    order_schema = params["$defs"]["Order"]
    assert "title" not in order_schema
    assert "title" in order_schema["properties"]  # the field called title is kept
    assert order_schema["properties"]["title"]["default"] == "untitled"
    assert params["$defs"]["Address"]["properties"]["city"]["description"] == "City name"
    assert params["properties"]["notes"] == {
        "type": "object",
        "additionalProperties": {"type": "integer"},
    }


def test_annotated_field_constraints_and_field_defaults() -> None:
    @tool
    def page(
        number: Annotated[int, Field(ge=1, description="1-based page")],
        size: int = Field(20, le=100),
    ) -> str:
        """Fetch a page.

        Args:
            size: Page size.
        """
        return ""

    props = page.parameters["properties"]
    assert props["number"] == {"type": "integer", "minimum": 1, "description": "1-based page"}
    assert props["size"] == {
        "type": "integer",
        "maximum": 100,
        "default": 20,
        "description": "Page size.",
    }


def test_decorator_options_and_direct_call() -> None:
    @tool(name="lookup-order", description="Find an order.", timeout=3, max_output_tokens=500)
    async def lookup(order_id: int) -> dict[str, int]:
        return {"id": order_id}

    assert isinstance(lookup, Tool)
    assert (lookup.name, lookup.description) == ("lookup-order", "Find an order.")
    assert (lookup.timeout, lookup.max_output_tokens, lookup.is_async) == (3, 500, True)
    assert lookup.openai_schema()["type"] == "function"
    assert lookup.openai_schema()["function"]["name"] == "lookup-order"

    @tool()
    def double(x: int) -> int:
        return 2 * x

    assert double(21) == 42  # the tool object still calls the function


def test_parameter_names_shadowing_basemodel_attributes() -> None:
    @tool
    def weird(json: str, schema: int, model_config: bool = False) -> str:
        return json

    assert weird.parameter_names == ["json", "schema", "model_config"]
    assert weird.validate({"json": "a", "schema": 1}) == {
        "json": "a",
        "schema": 1,
        "model_config": False,
    }


def test_run_context_parameter_is_not_in_the_schema() -> None:
    @tool
    def whoami(ctx: RunContext[dict[str, str]], greeting: str) -> str:
        return greeting

    assert whoami.takes_context
    assert list(whoami.parameters["properties"]) == ["greeting"]


def test_untyped_parameters_are_accepted_as_any() -> None:
    @tool
    def loose(x, y: Any = None) -> None:  # type: ignore[no-untyped-def]
        """Anything goes."""

    assert loose.parameters["required"] == ["x"]
    assert loose.validate({"x": [1, {"a": 2}]}) == {"x": [1, {"a": 2}], "y": None}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def f(*args: int) -> None: ...", r"takes \*args"),
        ("def f(**kw: int) -> None: ...", r"takes \*\*kw"),
        ("def f(a: int, /) -> None: ...", "positional-only"),
        ("def f(a: int, ctx: RunContext[int]) -> None: ...", "must be the first parameter"),
        ("def f(a: 'Missing') -> None: ...", "cannot read the type hints"),
        ("def f(a: threading.Lock) -> None: ...", "cannot be described as JSON"),
    ],
)
def test_definition_errors_say_what_and_where(source: str, message: str) -> None:
    import threading

    namespace: dict[str, Any] = {"RunContext": RunContext, "threading": threading}
    exec(compile(source, "tools_module.py", "exec"), namespace)
    with pytest.raises(ToolDefinitionError, match=message) as info:
        tool(namespace["f"])
    assert "tools_module.py:1" in str(info.value)


def test_bad_names_and_limits() -> None:
    with pytest.raises(ToolDefinitionError, match="invalid tool name '<lambda>'"):
        tool(lambda: None)
    with pytest.raises(ToolDefinitionError, match="invalid tool name 'has space'"):
        tool(name="has space")(google)
    with pytest.raises(ToolDefinitionError, match="timeout=0"):
        tool(timeout=0)(google)
    with pytest.raises(ToolDefinitionError, match="max_output_tokens=10"):
        tool(max_output_tokens=10)(google)
    with pytest.raises(ToolDefinitionError, match="needs a function"):
        Tool(42)  # type: ignore[arg-type]


def test_field_default_keeps_its_own_description() -> None:
    @tool
    def f(size: int = Field(3, description="own words")) -> int:
        """F.

        Args:
            size: docstring words.
        """
        return size

    assert f.parameters["properties"]["size"]["description"] == "own words"
    assert f.validate({}) == {"size": 3}
