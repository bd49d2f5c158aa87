"""Agent graphs: definition as data, validation, state, the step-by-step engine, checkpoints."""
