"""Test support code shared by the suite: helpers, fixtures and real servers started for the tests."""
