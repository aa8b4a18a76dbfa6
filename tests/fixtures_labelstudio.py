"""Shared pytest fixtures for this area."""
