"""Shared fixtures: each area keeps its own in tests/fixtures_<area>.py, registered here."""

import os

# Prefect's temporary server needs more than its default 20 s to start on a 2-core machine.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

pytest_plugins = [
    "tests.fixtures_media",
    "tests.fixtures_labelstudio",
    "tests.fixtures_models",
]
