"""Test doubles for atdak_agents users and for its own suite."""
