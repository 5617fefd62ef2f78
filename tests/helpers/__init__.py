"""Helpers shared by the tests; test modules import these, never each other."""
