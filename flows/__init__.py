"""Prefect flows: thin orchestration over the library stages."""
