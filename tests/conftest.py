"""Shared fixtures; helper functions live in tests/support.py."""
