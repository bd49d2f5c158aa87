"""Self-calibration: learn, per model, how real prompt token counts compare with estimates.

No tokenizer is documented for the Atdak models, so prompt sizes are estimated. Every
non-streamed answer reports ``usage.prompt_tokens``; feeding each one back with the estimate made
for the same request lets budgets converge on the model's real tokenizer::

    calibration.observe("atdak-llama-70b", estimated=1200, actual=1310)
    calibration.adjust("atdak-llama-70b", 1200)   # -> about 1310 once three samples agree

The correction is the median of the last ``window`` ratios ``actual / estimated``, each clamped to
``[min_ratio, max_ratio]``: one absurd sample (a cached prompt, a server bug) moves nothing.
"""

from __future__ import annotations

import math
import statistics
import threading
from collections import deque

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
        self._lock = threading.Lock()

    def observe(self, model: str, estimated: int, actual: int) -> float:
        """Record one request's estimate and the server's count; returns the model's new factor."""
        if estimated < self.min_tokens or actual <= 0:
            return self.factor(model)
        ratio = min(self.max_ratio, max(self.min_ratio, actual / estimated))
        with self._lock:
            samples = self._ratios.setdefault(model, deque(maxlen=self.window))
            samples.append(ratio)
            if len(samples) < self.min_samples:
                return 1.0
            factor = statistics.median(samples)
            self._factors[model] = factor
        return factor

    def factor(self, model: str) -> float:
        """The current correction for ``model`` (1.0 until it has ``min_samples`` samples)."""
        return self._factors.get(model, 1.0)

    def adjust(self, model: str, estimate: int) -> int:
        """``estimate`` corrected for ``model``, rounded up."""
        factor = self._factors.get(model)
        return estimate if factor is None else math.ceil(estimate * factor)

    def samples(self, model: str) -> int:
        """How many samples the current factor of ``model`` rests on."""
        found = self._ratios.get(model)
        return len(found) if found else 0

    def factors(self) -> dict[str, float]:
        """Every calibrated model's factor (e.g. to log or persist)."""
        return dict(self._factors)

    def reset(self, model: str | None = None) -> None:
        """Forget the samples of ``model``, or of every model."""
        with self._lock:
            if model is None:
                self._ratios.clear()
                self._factors.clear()
            else:
                self._ratios.pop(model, None)
                self._factors.pop(model, None)

    def __repr__(self) -> str:
        shown = ", ".join(f"{m}: {f:.3f}" for m, f in sorted(self._factors.items()))
        return f"TokenCalibration({{{shown}}})"


default_calibration = TokenCalibration()
"""The process-wide calibration that budgets use unless given another."""
