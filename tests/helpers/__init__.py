"""Helpers shared by several test packages (fixtures live in tests/conftest.py)."""
