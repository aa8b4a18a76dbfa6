"""Shared fixtures: each area keeps its own in tests/fixtures_<area>.py, registered here."""

pytest_plugins = [
    "tests.fixtures_media",
    "tests.fixtures_labelstudio",
]
