"""Fixtures shared by every test under tests/."""

pytest_plugins = ["services"]
