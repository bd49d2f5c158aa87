"""The jinja2 environment prompts render in.

- Sandboxed and immutable (:class:`~jinja2.sandbox.ImmutableSandboxedEnvironment`): a template
  can read the values it is given but cannot reach Python internals (``__class__``,
  ``__globals__``, ``mro``, format-string tricks) nor modify the caller's lists and dicts.
- Strict undefined: using a value that was not given raises :class:`MissingValue`, which records
  *where* the template looked (the container and the key), so the error can name the full path
  (``inputs.questoin``) and suggest the closest existing key.
- ``*`` and ``**`` are checked, so ``'a' * 10**9`` is refused instead of filling the memory (also
  at compile time, where jinja2 would otherwise fold the constant expression).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from jinja2 import FileSystemLoader, StrictUndefined, UndefinedError
from jinja2.environment import Environment
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = [
    "MAX_REPEAT",
    "MissingValue",
    "PromptSandbox",
    "RecordingLoader",
    "StrictPromptUndefined",
]

MAX_REPEAT = 1_000_000  # most items a ``*`` repetition may build (characters or list items)
MAX_POWER_BITS = 10_000  # largest integer ``**`` may build, in bits


class MissingValue(UndefinedError):
    """A template used a value it was not given.

    ``container`` is the object the template looked in (``jinja2.utils.missing`` for a top-level
    name) and ``key`` the attribute, key or index it asked for.
    """

    def __init__(self, message: str, *, container: Any, key: Any) -> None:
        self.container = container
        self.key = key
        super().__init__(message)


class StrictPromptUndefined(StrictUndefined):
    """Like :class:`~jinja2.StrictUndefined`, but its error says where the template looked."""

    __slots__ = ()

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> NoReturn:
        if self._undefined_exception is not UndefinedError:  # e.g. SecurityError from the sandbox
            raise self._undefined_exception(self._undefined_message)
        raise MissingValue(
            self._undefined_message, container=self._undefined_obj, key=self._undefined_name
        )

    # jinja2 binds these operators to the base class's method; rebind them to ours.
    __iter__ = __str__ = __len__ = _fail_with_undefined_error
    __eq__ = __ne__ = __bool__ = __hash__ = _fail_with_undefined_error
    __contains__ = __call__ = __getitem__ = _fail_with_undefined_error
    __add__ = __radd__ = __sub__ = __rsub__ = _fail_with_undefined_error
    __mul__ = __rmul__ = __div__ = __rdiv__ = _fail_with_undefined_error
    __truediv__ = __rtruediv__ = _fail_with_undefined_error
    __floordiv__ = __rfloordiv__ = _fail_with_undefined_error
    __mod__ = __rmod__ = __pos__ = __neg__ = _fail_with_undefined_error
    __lt__ = __le__ = __gt__ = __ge__ = _fail_with_undefined_error
    __int__ = __float__ = __complex__ = _fail_with_undefined_error
    __pow__ = __rpow__ = _fail_with_undefined_error


class PromptSandbox(ImmutableSandboxedEnvironment):
    """The sandboxed environment, with size checks on ``*`` and ``**``.

    On a mapping, ``x.name`` means the key ``name`` when there is one: ``state.items`` is the
    state key ``items``, not the dict method of that name.
    """

    intercepted_binops = frozenset({"*", "**"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        """Keys first for mappings, then jinja2's sandboxed attribute lookup."""
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        return super().getattr(obj, attribute)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Refuse repetitions and powers that would build huge values; else compute as usual."""
        if operator == "*":
            _check_repeat(left, right)
        elif operator == "**":
            _check_power(left, right)
        return super().call_binop(context, operator, left, right)


def _check_repeat(left: Any, right: Any) -> None:
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, (str, list, tuple)) and isinstance(times, int):
            size = len(seq) * times
            if size > MAX_REPEAT:
                raise SecurityError(
                    f"a repetition would build {size:,} items; "
                    f"the sandbox allows at most {MAX_REPEAT:,}"
                )


def _check_power(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int) and right > 0:
        bits = max(left.bit_length(), 1) * right
        if bits > MAX_POWER_BITS:
            raise SecurityError(
                f"{left} ** {right} would build a number of about {bits:,} bits; "
                f"the sandbox allows at most {MAX_POWER_BITS:,}"
            )


class RecordingLoader(FileSystemLoader):
    """A :class:`~jinja2.FileSystemLoader` that remembers the source of every file it loaded.

    Errors raised inside an included file are explained from that file's source.
    """

    def __init__(self, search_path: Sequence[str]) -> None:
        super().__init__(list(search_path))
        self.sources: dict[str, str] = {}

    def get_source(self, environment: Environment, template: str) -> Any:
        """Load ``template`` as :class:`~jinja2.FileSystemLoader` does, and remember it."""
        source, filename, uptodate = super().get_source(environment, template)
        self.sources[filename] = source
        return source, filename, uptodate
