"""Taxonomy, typed records, manifest schemas and build configuration."""
