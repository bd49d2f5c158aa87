"""Shared state: declared keys, and the reducer that merges each update into a key.

Nodes return partial updates (``{"drafts": "…"}``); the engine applies all updates of a step in a
deterministic order (the order of the step's tasks, whatever order they finished in). Writing a
key that was not declared is an error, never silently dropped.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias

from ..exceptions import NodeError
from .spec import StateKeySpec

__all__ = ["BUILTIN_REDUCERS", "Reducer", "StateSchema", "check_type"]

Reducer: TypeAlias = Callable[[Any, Any], Any]


def _replace(current: Any, update: Any) -> Any:
    return update


def _append(current: Any, update: Any) -> list[Any]:
    return [*(current or ()), update]


def _extend(current: Any, update: Any) -> list[Any]:
    if not isinstance(update, list | tuple):
        raise TypeError(f"the 'extend' reducer takes a list, got {type(update).__name__}")
    return [*(current or ()), *update]


def _merge(current: Any, update: Any) -> dict[str, Any]:
    if not isinstance(update, Mapping):
        raise TypeError(f"the 'merge' reducer takes a mapping, got {type(update).__name__}")
    return {**(current or {}), **update}


def _add(current: Any, update: Any) -> Any:
    return update if current is None else current + update


BUILTIN_REDUCERS: dict[str, Reducer] = {
    "replace": _replace,
    "append": _append,
    "extend": _extend,
    "merge": _merge,
    "add": _add,
}

_PYTHON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "list": (list, tuple),
    "dict": dict,
}


def check_type(declared: str, value: Any) -> bool:
    """Whether ``value`` fits a declared value type (``None`` always fits)."""
    expected = _PYTHON_TYPES.get(declared)
    if expected is None or value is None:
        return True
    if declared in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, expected)


class StateSchema:
    """The declared state keys of a graph with their reducers."""

    def __init__(
        self,
        keys: Mapping[str, StateKeySpec],
        resolve: Callable[[str], Callable[..., Any]],
    ) -> None:
        self.keys = dict(keys)
        self.reducers: dict[str, Reducer] = {
            name: _reducer_of(spec, resolve) for name, spec in self.keys.items()
        }
        self.typed = {name: spec.type for name, spec in self.keys.items() if spec.type != "any"}
        # per typed key: the Python type(s) its values must have, and whether a bool is refused
        # (one lookup per update, not a check_type call)
        self._checks = {
            name: (_PYTHON_TYPES[declared], declared in ("integer", "number"))
            for name, declared in self.typed.items()
            if declared in _PYTHON_TYPES
        }
        # when no key's initial value can change (numbers, text, None...), a fresh state is a
        # copy of this dict; otherwise each key gets its own new or copied value
        self._fixed = {name: spec.default for name, spec in self.keys.items() if _immutable(spec)}
        self._all_fixed = len(self._fixed) == len(self.keys)

    def initial(self) -> dict[str, Any]:
        """A fresh state: every key at its declared default (copied, never shared); a list or
        dict key without a default starts empty."""
        if self._all_fixed:
            return dict(self._fixed)
        return {name: _initial_value(spec) for name, spec in self.keys.items()}

    def apply(self, state: dict[str, Any], node: str, updates: Mapping[str, Any]) -> list[str]:
        """Merge one node's ``updates`` into ``state`` in place; returns the keys written."""
        reducers, checks = self.reducers, self._checks
        for key, value in updates.items():
            reducer = reducers.get(key)
            if reducer is None:
                raise NodeError(node, self._undeclared(key))
            if reducer is _replace:
                new = value
            else:
                try:
                    new = reducer(state.get(key), value)
                except (TypeError, ValueError) as exc:
                    raise NodeError(node, f"cannot update state key {key!r}: {exc}") from exc
            check = checks.get(key)
            if check is not None and new is not None:
                expected, refuses_bool = check
                if not isinstance(new, expected) or (refuses_bool and type(new) is bool):
                    raise NodeError(node, _mistyped(key, self.typed[key], new))
            state[key] = new
        return list(updates)

    def replay(self, updates: Iterable[tuple[str, str, Any]]) -> dict[str, Any]:
        """The state after applying ``(node, key, value)`` updates to a fresh state."""
        state = self.initial()
        for node, key, value in updates:
            self.apply(state, node, {key: value})
        return state

    def _undeclared(self, key: str) -> str:
        known = ", ".join(sorted(self.keys)) or "none"
        return (
            f"wrote state key {key!r}, which is not declared (declared keys: {known}); "
            f"declare it under `state:` with a type and reducer"
        )


def _mistyped(key: str, declared: str, value: Any) -> str:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return (
        f"wrote {shown} ({type(value).__name__}) to state key {key!r}, which is declared "
        f"{declared}; change what the node writes or the key's type"
    )


def _initial_value(spec: StateKeySpec) -> Any:
    if spec.default is None and spec.type in _EMPTY:
        return _EMPTY[spec.type]()
    return copy.deepcopy(spec.default)


_EMPTY: dict[str, Callable[[], Any]] = {"list": list, "dict": dict}
_ATOMS = frozenset({str, int, float, bool, bytes, type(None)})


def _immutable(spec: StateKeySpec) -> bool:
    """Whether the key's initial value can be shared by every state (it cannot change)."""
    if spec.default is None:
        return spec.type not in _EMPTY
    return type(spec.default) in _ATOMS


def _reducer_of(spec: StateKeySpec, resolve: Callable[[str], Callable[..., Any]]) -> Reducer:
    reducer = spec.reducer
    if callable(reducer):
        return reducer
    if reducer in BUILTIN_REDUCERS:
        return BUILTIN_REDUCERS[reducer]
    return resolve(reducer)
