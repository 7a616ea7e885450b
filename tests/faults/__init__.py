"""Fault injection helpers for the reliability suites."""
