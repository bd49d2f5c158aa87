"""Context management: token counting, budgets and fitting a history into a model's window.

- :mod:`.tokens` — ``count_tokens``, the ``Tokenizer`` protocol, the offline estimator, exact
  ``cl100k_base`` / ``o200k_base`` vocabularies (layer 1: templates, tools and memory use it);
- :mod:`.calibration` — per-model correction learnt from the server's ``usage.prompt_tokens``;
- :mod:`.budget` — ``ContextBudget`` and the check made before a request is sent;
- :mod:`.history` — ``HistoryFitter``: strategies run over a history until it fits;
- :mod:`.strategies` — keep_last, drop_oldest, truncate_middle, summarize, raise;
- :mod:`.refit` — send fitted, and trim harder and retry once on context-length-exceeded;
- :mod:`.split` — cut a long document into chunks by token budget.
"""
