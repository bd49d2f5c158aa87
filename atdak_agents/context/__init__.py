"""Context management: token counting, budgets and fitting a history into a model's window."""
