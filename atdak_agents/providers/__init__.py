"""The chat-completions provider layer: wire types, model profiles, clients."""
