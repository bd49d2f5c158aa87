"""Self-calibration: learn, per model, how real prompt token counts compare with estimates.

No tokenizer is documented for the Atdak models, so prompt sizes are estimated. Every
non-streamed answer reports ``usage.prompt_tokens``; feeding each one back with the estimate made
for the same request lets budgets converge on the model's real tokenizer::

    calibration.observe("atdak-llama-70b", estimated=1200, actual=1310)
    calibration.adjust("atdak-llama-70b", 1200)   # -> about 1310 once three samples agree

The correction is the median of the last ``window`` ratios ``actual / estimated``, each clamped to
``[min_ratio, max_ratio]``: one absurd sample (a cached prompt, a server bug) moves nothing.

Estimating a prompt costs more than sending it, so a caller that only may need the factor later
can hand over the estimate as a function (:meth:`TokenCalibration.observe_later`): it runs when
the factor is next read, and only for the samples that can still count (the last ``window``).
"""

from __future__ import annotations

import math
import statistics
import threading
from collections import deque
from collections.abc import Callable

from ..exceptions import InvalidParameterError

__all__ = ["TokenCalibration", "default_calibration"]


class TokenCalibration:
    """Per-model correction factors from estimated to actual prompt tokens (thread-safe).

    ``window``: how many recent samples the median is taken over. ``min_ratio`` / ``max_ratio``:
    each sample's ratio is clamped to this range. ``min_tokens``: samples whose estimate is
    smaller are ignored (framing dominates tiny prompts). ``min_samples``: the factor stays 1
    until a model has this many samples, so no single answer decides it.
    """

    def __init__(
        self,
        *,
        window: int = 50,
        min_ratio: float = 0.5,
        max_ratio: float = 2.0,
        min_tokens: int = 16,
        min_samples: int = 3,
    ) -> None:
        if window < 1:
            raise InvalidParameterError("window", window, "must be at least 1")
        if not 0 < min_ratio <= 1 <= max_ratio:
            raise InvalidParameterError(
                "min_ratio/max_ratio",
                (min_ratio, max_ratio),
                "need 0 < min_ratio <= 1 <= max_ratio",
            )
        self.window = window
        self.min_ratio = min_ratio
        self.max_ratio = max_ratio
        self.min_tokens = min_tokens
        self.min_samples = max(1, min_samples)
        self._ratios: dict[str, deque[float]] = {}
        self._factors: dict[str, float] = {}
        # Samples whose estimate is still to be made, oldest first (see observe_later).
        self._pending: dict[str, deque[tuple[Callable[[], int], int]]] = {}
        self._lock = threading.Lock()

    def observe(self, model: str, estimated: int, actual: int) -> float:
        """Record one request's estimate and the server's count; returns the model's new factor."""
        with self._lock:
            self._settle(model)
            if estimated < self.min_tokens or actual <= 0:
                return self._factors.get(model, 1.0)
            return self._add(model, estimated, actual)

    def observe_later(self, model: str, estimate: Callable[[], int], actual: int) -> None:
        """:meth:`observe`, with the estimate made only when the factor is next read.

        The caller vouches that ``estimate()`` will be at least ``min_tokens`` (a sample that
        would be ignored cannot be told apart without estimating it). Only the last ``window``
        such samples are kept: older ones could not count any more. The factor read later is
        exactly the one :meth:`observe` would have given.
        """
        if actual <= 0:
            return
        with self._lock:
            pending = self._pending.get(model)
            if pending is None:
                pending = self._pending[model] = deque(maxlen=self.window)
            pending.append((estimate, actual))

    def _settle(self, model: str) -> None:
        """Make the pending estimates of ``model`` and add their samples (lock held)."""
        pending = self._pending.pop(model, None)
        while pending:
            estimate, actual = pending.popleft()
            estimated = estimate()
            if estimated >= self.min_tokens:
                self._add(model, estimated, actual)

    def _add(self, model: str, estimated: int, actual: int) -> float:
        ratio = min(self.max_ratio, max(self.min_ratio, actual / estimated))
        samples = self._ratios.setdefault(model, deque(maxlen=self.window))
        samples.append(ratio)
        if len(samples) < self.min_samples:
            return 1.0
        factor = statistics.median(samples)
        self._factors[model] = factor
        return factor

    def _current(self, model: str) -> float | None:
        if model in self._pending:
            with self._lock:
                self._settle(model)
        return self._factors.get(model)

    def factor(self, model: str) -> float:
        """The current correction for ``model`` (1.0 until it has ``min_samples`` samples)."""
        found = self._current(model)
        return 1.0 if found is None else found

    def factor_bound(self, model: str) -> float:
        """A factor that :meth:`factor` cannot exceed, known without making pending estimates:
        the factor itself when none are pending, else ``max_ratio``."""
        if model in self._pending:
            return self.max_ratio
        return self._factors.get(model, 1.0)

    def adjust(self, model: str, estimate: int) -> int:
        """``estimate`` corrected for ``model``, rounded up."""
        factor = self._current(model)
        return estimate if factor is None else math.ceil(estimate * factor)

    def samples(self, model: str) -> int:
        """How many samples the current factor of ``model`` rests on."""
        self._current(model)
        found = self._ratios.get(model)
        return len(found) if found else 0

    def factors(self) -> dict[str, float]:
        """Every calibrated model's factor (e.g. to log or persist)."""
        for model in list(self._pending):
            self._current(model)
        return dict(self._factors)

    def reset(self, model: str | None = None) -> None:
        """Forget the samples of ``model``, or of every model."""
        with self._lock:
            if model is None:
                self._ratios.clear()
                self._factors.clear()
                self._pending.clear()
            else:
                self._ratios.pop(model, None)
                self._factors.pop(model, None)
                self._pending.pop(model, None)

    def __repr__(self) -> str:
        shown = ", ".join(f"{m}: {f:.3f}" for m, f in sorted(self.factors().items()))
        return f"TokenCalibration({{{shown}}})"


default_calibration = TokenCalibration()
"""The process-wide calibration that budgets use unless given another."""
