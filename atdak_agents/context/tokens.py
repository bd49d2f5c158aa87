"""Token counting: a ``Tokenizer`` protocol, a fast offline estimator, exact BPE vocabularies.

``count_tokens("你好，世界", model="atdak-llama-70b")`` counts with the tokenizer named by the
model's profile (``ModelProfile.tokenizer``): ``"estimate"`` (the default, no dependency) or an
exact vocabulary, ``"cl100k_base"`` or ``"o200k_base"``, from the optional ``bpe-openai`` package
(``pip install 'atdak-agents[tokenizers]'``; it ships the vocabularies and needs no network).

The estimator mimics how byte-level BPE vocabularies split text: English words by length and
camel-case humps, runs of punctuation, digits in groups of three, whitespace runs, frequent Han
characters as one token and rare ones as two or three, kana, Hangul and other scripts by
character. It aims a few percent *above* ``cl100k_base`` (an under-count is what overflows a
context window); ``atdak_agents.context.calibration`` then learns each model's real ratio.

A chat request costs more than its texts: every message carries a few tokens of framing, and the
reply is primed with a few more (:data:`MESSAGE_OVERHEAD`, :data:`REPLY_PRIMING`). Counts of
:class:`~atdak_agents.messages.Message` objects are cached on the message, so counting a history
again after appending to it costs only the new messages.
"""

from __future__ import annotations

import json
import math
import re
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from ..exceptions import InvalidParameterError, UsageError
from ..messages import Message, MessageLike, as_message
from ..providers.profiles import ModelProfile, default_registry

__all__ = [
    "MESSAGE_OVERHEAD",
    "REPLY_PRIMING",
    "BPETokenizer",
    "EstimateTokenizer",
    "Tokenizer",
    "count_message_tokens",
    "count_tokens",
    "get_tokenizer",
    "message_token_bound",
    "register_tokenizer",
    "remember_message_tokens",
    "tokenizer_for_model",
    "tokenizer_names",
    "utf8_size",
]

MESSAGE_OVERHEAD = 4
"""Tokens of framing around each message of a chat request (role marker, separators)."""
REPLY_PRIMING = 3
"""Tokens a chat request spends priming the assistant's reply."""
NAME_OVERHEAD = 1
TOOL_CALL_OVERHEAD = 8


@runtime_checkable
class Tokenizer(Protocol):
    """Counts the tokens of a text. ``name`` identifies it in caches and error messages.

    A tokenizer may also offer ``upper_bound(text) -> int``: a count that ``count(text)`` never
    exceeds, computed from the text's size alone. Budgets use it to skip counting prompts that
    fit whatever their content (the built-in tokenizers have one; without it, prompts are
    always counted).
    """

    name: str

    def count(self, text: str) -> int: ...


# --------------------------------------------------------------------------- the estimator

# Han characters that byte-level BPE vocabularies (cl100k_base among them) hold as one token: the
# most frequent ones. Any other Han character costs two or three tokens.
_FREQUENT_HAN = (
    "一万三上下不与专业东两个中串为主么义之也书了事二于五些交产享京人亿今介从他付代以们件价任份企优会传但位体何余作你使例供価保信修倍值停像元先入全公共关其具内円册再"
    "写出击分列则初利别到制前力功加务动動包化北区十午华单南即历原去县参及友反发取变口只可台右号司合同名后向否含听启告员周命和品哈商問器四回因国图土在地场址型城基報場"
    "填增声处备复外多大天失头女好如始子字存学安宋完定实审客家容密对导将小少尔就局展山岁州工左已市布常平年并广序库应店度建开异式引张当录形影径待後得微心必志态思性总息"
    "您情意感成我或户所手打找技投报拉持指按换据排接推提播支收改放政效数整文料断新方族无日时明易星是時景更最月有服期木未本机权束条来板构析果查标样核格案检模次款止正此"
    "步歳段每比民気水求江汽没治法注活流海消清游源火点無然片版物特率环现球理生用由电男画界番登的监目直相省看県真知码确示社票私种科秒称移程稍税稿空立站章端笑符第等签简"
    "算管箱米类系素索约级线组经结给络统编网置美老考者而联能自至色节英藏行表装西要見见规视角解言計記話読计认议记论设证评试话询该详语误说请读调象责败账货购费资起超路身"
    "车转软载辑输达过运近还这进连述退送选通速造連道邮部都配释里重量金钟钮链销错键长開間関门闭问间队阳陆限院除雅集雷需非面音页项预频题额首验高黑"
)

_P = r"!-/:-@\[-`{-~"  # ASCII punctuation, as a character-class body
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
_PUNCT = re.compile(f"[{_P}]+")
_REPEATS = re.compile(f"([{_P}])\\1{{3,}}")
_PREFIXED = re.compile(f"(?<![\\s{_P}])[{_P}](?=[^\\W\\d_])")
_DIGITS = re.compile(r"\d{1,3}")
_NEWLINE = re.compile(f"(?<![\\s{_P}])\\s*[\\r\\n]")
_SPACE_DIGIT = re.compile(r"[ \t](?=\d)")
_SPACES = re.compile(r"[ \t]{2,}")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_FREQUENT = re.compile("[" + _FREQUENT_HAN + "]")
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
_LATIN_EXT = re.compile(r"[\u00c0-\u024f\u1e00-\u1eff]")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_OTHER_LETTER = re.compile(
    r"[^\W\d_A-Za-z\u00c0-\u024f\u0400-\u04ff\u1100-\u11ff\u1e00-\u1eff\u3040-\u30ff"
    r"\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
    r"\uff66-\uff9f\U00020000-\U0003134f]"
)
_WIDE_SYMBOL = re.compile(r"[^\w\s!-~]")

_MAX_RUN = 199
# Tokens of an English word (or camel-case hump) by its length; longer ones by a rate.
_WORD_TABLE = (0, 1, 1, 1.01, 1.05, 1.04, 1.05, 1.08, 1.12, 1.18, 1.28, 1.4, 1.5, 1.65, 1.9, 2.1)
_WORD_COST = _WORD_TABLE + tuple(n / 5.5 for n in range(len(_WORD_TABLE), _MAX_RUN + 1))
# Tokens of a run of ASCII punctuation by its length.
_PUNCT_TABLE = (0, 1, 1.05, 1.25, 1.5, 2.3, 2.8, 3.1, 3.6)
_PUNCT_COST = _PUNCT_TABLE + tuple(n / 2 for n in range(len(_PUNCT_TABLE), _MAX_RUN + 1))

_PREFIX_SAVING = 0.8  # punctuation glued to the word after it ("(self", ".append") shares a token
_FREQUENT_HAN_COST = 0.88  # below 1: frequent pairs merge into one token
_RARE_HAN_COST = 2.4
_KANA_COST = 1.1
_HANGUL_COST = 1.2
_LATIN_EXT_COST = 0.55
_EUROPEAN_WORD_SCALE = 1.25
_CYRILLIC_COST = 0.5
_OTHER_LETTER_COST = 1.3
_WIDE_SYMBOL_COST = 1.0
_SAFETY = 1.04  # aim a little above the reference: under-counting overflows windows


def utf8_size(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (no encoding needed for ASCII text; a lone surrogate counts 3)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _run_cost(pattern: re.Pattern[str], table: tuple[float, ...], text: str) -> float:
    lengths = list(map(len, pattern.findall(text)))
    if not lengths:
        return 0.0
    if max(lengths) <= _MAX_RUN:
        return sum(map(table.__getitem__, lengths))
    rate = table[_MAX_RUN] / _MAX_RUN  # very long runs (base64, minified code) scale linearly
    return sum(table[n] if n <= _MAX_RUN else n * rate for n in lengths)


class EstimateTokenizer:
    """The default offline estimator (no vocabulary, no dependency).

    Within about ±10% of ``cl100k_base`` on English prose, Chinese prose, Python code and JSON,
    erring high. Stateless and thread-safe.
    """

    name = "estimate"

    def count(self, text: str) -> int:
        """Estimated tokens of ``text``."""
        if not text:
            return 0
        if text.isascii():
            return max(1, math.ceil(self._ascii_cost(text) * _SAFETY))
        accented = len(_LATIN_EXT.findall(text))
        # Accented letters mark a European language other than English, whose words a mostly
        # English vocabulary splits into more pieces.
        scale = _EUROPEAN_WORD_SCALE if accented * 200 > len(text) else 1.0
        total = self._ascii_cost(text, scale) + accented * _LATIN_EXT_COST
        return max(1, math.ceil((total + self._wide_cost(text)) * _SAFETY))

    def upper_bound(self, text: str) -> int:
        """A count :meth:`count` never exceeds, from the UTF-8 size of ``text`` alone.

        No rule of the estimator charges more than one token per byte it covers (a word of n
        letters at most n, a Han character (3 bytes) 2.4, ...), so the count is at most
        ``ceil(1.04 * bytes)``; ``bytes + bytes // 25 + 1`` is above that, float rounding
        included. Checked against the corpora and by a property test.
        """
        # (ASCII text, the common case, sized inline: budgets bound every message of a request)
        size = len(text) if text.isascii() else utf8_size(text)
        return size + size // 25 + 1 if size else 0

    @staticmethod
    def _ascii_cost(text: str, word_scale: float = 1.0) -> float:
        if _REPEATS.search(text):  # "-----" and "=====" rules are one or two tokens
            text = _REPEATS.sub(r"\1\1", text)
        total = _run_cost(_WORD, _WORD_COST, text) * word_scale
        total += _run_cost(_PUNCT, _PUNCT_COST, text)
        total -= _PREFIX_SAVING * len(_PREFIXED.findall(text))
        total += len(_DIGITS.findall(text)) + len(_SPACE_DIGIT.findall(text))
        if "\n" in text or "\r" in text:
            total += len(_NEWLINE.findall(text))
        if "  " in text or "\t" in text:
            total += len(_SPACES.findall(text))
        return total

    @staticmethod
    def _wide_cost(text: str) -> float:
        han = len(_HAN.findall(text))
        frequent = len(_FREQUENT.findall(text)) if han else 0
        return (
            frequent * _FREQUENT_HAN_COST
            + (han - frequent) * _RARE_HAN_COST
            + len(_KANA.findall(text)) * _KANA_COST
            + len(_HANGUL.findall(text)) * _HANGUL_COST
            + len(_CYRILLIC.findall(text)) * _CYRILLIC_COST
            + len(_OTHER_LETTER.findall(text)) * _OTHER_LETTER_COST
            + len(_WIDE_SYMBOL.findall(text)) * _WIDE_SYMBOL_COST
        )

    def __repr__(self) -> str:
        return "EstimateTokenizer()"


# --------------------------------------------------------------------------- exact vocabularies


class BPETokenizer:
    """An exact OpenAI BPE vocabulary (``cl100k_base``, ``o200k_base``) from ``bpe-openai``.

    The vocabulary loads on first use (about half a second), offline. Special-token text such as
    ``<|endoftext|>`` is counted as ordinary text, as a chat endpoint would.
    """

    def __init__(self, encoding: str) -> None:
        self.name = encoding
        self._encoding: Any = None
        self._lock = threading.Lock()

    def count(self, text: str) -> int:
        """Exact tokens of ``text``."""
        if not text:
            return 0
        return len(self._load().encode_ordinary(text))

    def upper_bound(self, text: str) -> int:
        """A count :meth:`count` never exceeds: the UTF-8 size of ``text`` (every token of a
        byte-level BPE stands for at least one byte)."""
        return utf8_size(text)

    def _load(self) -> Any:
        if self._encoding is None:
            with self._lock:
                if self._encoding is None:
                    self._encoding = _load_encoding(self.name)
        return self._encoding

    def __repr__(self) -> str:
        return f"BPETokenizer({self.name!r})"


def _load_encoding(name: str) -> Any:
    # bpe-openai 0.1.x reads its vocabularies (some at import) with a deprecated
    # importlib.resources call; the warning is its own, not the caller's.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import bpe_openai
        except ImportError:
            raise UsageError(
                f"tokenizer {name!r} needs the optional package bpe-openai: install it with "
                "`pip install 'atdak-agents[tokenizers]'`, or set the model profile's tokenizer "
                "to 'estimate'"
            ) from None
        return bpe_openai.get_encoding(name)


# --------------------------------------------------------------------------- registry

_FACTORIES: dict[str, Callable[[], Tokenizer]] = {
    "estimate": EstimateTokenizer,
    "cl100k_base": lambda: BPETokenizer("cl100k_base"),
    "o200k_base": lambda: BPETokenizer("o200k_base"),
}
_INSTANCES: dict[str, Tokenizer] = {}
_REGISTRY_LOCK = threading.Lock()


def register_tokenizer(name: str, factory: Callable[[], Tokenizer]) -> None:
    """Make ``factory()`` available as tokenizer ``name`` (e.g. for ``ModelProfile.tokenizer``)."""
    with _REGISTRY_LOCK:
        _FACTORIES[name] = factory
        _INSTANCES.pop(name, None)


def tokenizer_names() -> list[str]:
    """The names :func:`get_tokenizer` accepts."""
    return sorted(_FACTORIES)


def get_tokenizer(name: str) -> Tokenizer:
    """The tokenizer registered as ``name`` (one shared instance per name)."""
    found = _INSTANCES.get(name)
    if found is not None:
        return found
    with _REGISTRY_LOCK:
        factory = _FACTORIES.get(name)
        if factory is None:
            allowed = ", ".join(repr(n) for n in sorted(_FACTORIES))
            raise InvalidParameterError("tokenizer", name, f"known tokenizers are {allowed}")
        return _INSTANCES.setdefault(name, factory())


def tokenizer_for_model(model: str | ModelProfile | None) -> Tokenizer:
    """The tokenizer of a model's profile; the estimator when ``model`` is ``None``."""
    if model is None:
        return get_tokenizer("estimate")
    profile = model if isinstance(model, ModelProfile) else default_registry.get(model)
    return get_tokenizer(profile.tokenizer)


# --------------------------------------------------------------------------- messages

_CACHE_SLOT = Message.__dict__["_token_cache"]  # the slot's descriptor: no pydantic hook


def _fingerprint(message: Message) -> tuple[object, ...]:
    calls = message.tool_calls
    call_key = (
        tuple((c.id, c.function.name, c.function.arguments) for c in calls) if calls else None
    )
    return (message.content, message.role, message.name, message.tool_call_id, call_key)


def _message_cache(message: Message) -> dict[str, tuple[tuple[object, ...], int]]:
    try:
        cache: dict[str, tuple[tuple[object, ...], int]] = _CACHE_SLOT.__get__(message)
    except AttributeError:  # made on the first count (most messages are never counted)
        cache = {}
        _CACHE_SLOT.__set__(message, cache)
    return cache


def _uncached_message_tokens(message: Message, tokenizer: Tokenizer) -> int:
    total = MESSAGE_OVERHEAD + tokenizer.count(message.text)
    if message.name:
        total += NAME_OVERHEAD + tokenizer.count(message.name)
    if message.tool_call_id:
        total += tokenizer.count(message.tool_call_id)
    for call in message.tool_calls or ():
        total += TOOL_CALL_OVERHEAD + tokenizer.count(call.function.name)
        total += tokenizer.count(call.function.arguments) + tokenizer.count(call.id)
    return total


def message_token_bound(message: Message, upper_bound: Callable[[str], int]) -> int:
    """A count :func:`count_message_tokens` never exceeds for ``message``, given a tokenizer's
    ``upper_bound`` (the same framing as :func:`_uncached_message_tokens`, texts bounded)."""
    total = MESSAGE_OVERHEAD + upper_bound(message.text)
    if message.name:
        total += NAME_OVERHEAD + upper_bound(message.name)
    if message.tool_call_id:
        total += upper_bound(message.tool_call_id)
    for call in message.tool_calls or ():
        total += TOOL_CALL_OVERHEAD + upper_bound(call.function.name)
        total += upper_bound(call.function.arguments) + upper_bound(call.id)
    return total


def count_message_tokens(message: Message, tokenizer: Tokenizer) -> int:
    """Tokens one message costs in a chat request, framing included; cached on the message.

    The cache is checked against the message's content, role, name and tool calls, so a message
    changed after it was counted is counted again.
    """
    cache = _message_cache(message)
    key = _fingerprint(message)
    hit = cache.get(tokenizer.name)
    if hit is not None and hit[0] == key:
        return hit[1]
    tokens = _uncached_message_tokens(message, tokenizer)
    cache[tokenizer.name] = (key, tokens)
    return tokens


def remember_message_tokens(message: Message, tokenizer_name: str, tokens: int) -> None:
    """Record that ``message`` costs ``tokens`` under the tokenizer named ``tokenizer_name``
    (a count known already, such as the one a memory store kept), so
    :func:`count_message_tokens` does not count it again. Like every cached count it is
    dropped once the message's content, role, name or tool calls change."""
    _message_cache(message)[tokenizer_name] = (_fingerprint(message), tokens)


def count_tokens(
    text_or_messages: str | Sequence[MessageLike],
    model: str | ModelProfile | None = None,
    *,
    tokenizer: Tokenizer | str | None = None,
) -> int:
    """Tokens of a text, or of a list of chat messages as one request, for ``model``.

    ``count_tokens("hello", model="atdak-gpt-4")``; ``count_tokens([{"role": "user", "content":
    "你好"}], model="atdak-llama-70b")``. Messages may be dicts or :class:`Message` objects; a
    list costs the reply priming plus each message with its framing, so
    ``count_tokens([m]) - count_tokens([])`` is what message ``m`` adds to a request.
    ``tokenizer`` (a name or an object) overrides the model's; with neither, the estimator counts.
    These are raw counts: budgets apply the per-model calibration on top.
    """
    counter = _resolve(model, tokenizer)
    if isinstance(text_or_messages, str):
        return counter.count(text_or_messages)
    items: Sequence[MessageLike] = text_or_messages
    if not isinstance(items, (list, tuple)):
        raise InvalidParameterError(
            "text_or_messages",
            type(items).__name__,
            "pass a str or a list of messages (dicts or Message objects)",
        )
    messages = (as_message(m) for m in items)
    return sum(count_message_tokens(m, counter) for m in messages) + REPLY_PRIMING


def _resolve(model: str | ModelProfile | None, tokenizer: Tokenizer | str | None) -> Tokenizer:
    if tokenizer is None:
        return tokenizer_for_model(model)
    return get_tokenizer(tokenizer) if isinstance(tokenizer, str) else tokenizer


def json_tokens(value: object, tokenizer: Tokenizer) -> int:
    """Tokens of ``value`` serialised as compact JSON (e.g. native tool definitions)."""
    return tokenizer.count(json_text(value))


def json_text(value: object) -> str:
    """``value`` as the compact JSON whose tokens :func:`json_tokens` counts."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
