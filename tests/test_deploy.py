"""The team deployment files are valid: docker-compose.yml (offline validation) and prefect.yaml."""

import importlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def compose_env(tmp_path):
    env = dict(os.environ, POSTGRES_PASSWORD="pw", LABEL_STUDIO_PASSWORD="pw2", LABEL_STUDIO_TOKEN="t" * 40)
    return env


def _compose(env, *args):
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.skip("Debian's docker-compose is not installed (.ci/run installs it)")
    return subprocess.run([exe, "-f", str(ROOT / "docker-compose.yml"), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True)


def test_compose_file_validates_offline(compose_env):
    proc = _compose(compose_env, "config", "-q")
    assert proc.returncode == 0, proc.stderr


def test_compose_has_the_team_services(compose_env):
    proc = _compose(compose_env, "config")
    assert proc.returncode == 0, proc.stderr
    config = yaml.safe_load(proc.stdout)
    services = config["services"]
    assert {"postgres", "labelstudio", "prefect-server", "worker"} <= set(services)
    assert services["labelstudio"]["environment"]["DJANGO_DB"] == "default"
    assert "postgresql+asyncpg://" in services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    def sources(service):
        return {v["source"] if isinstance(v, dict) else v.split(":")[0] for v in services[service]["volumes"]}

    assert sources("worker") & sources("labelstudio") == {"ferv-data"}


def test_compose_refuses_to_start_without_secrets():
    env = {k: v for k, v in os.environ.items() if k not in {"POSTGRES_PASSWORD", "LABEL_STUDIO_PASSWORD",
                                                         "LABEL_STUDIO_TOKEN"}}
    proc = _compose(env, "config", "-q")
    assert proc.returncode != 0 and "POSTGRES_PASSWORD" in proc.stderr + proc.stdout


def test_env_example_names_every_required_variable():
    example = (ROOT / ".env.example").read_text()
    for name in ("POSTGRES_PASSWORD", "LABEL_STUDIO_PASSWORD", "LABEL_STUDIO_TOKEN"):
        assert f"{name}=" in example


def test_prefect_yaml_entrypoints_are_flows():
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    names = set()
    for deployment in spec["deployments"]:
        module, func = deployment["entrypoint"].split(":")
        obj = getattr(importlib.import_module(module.removesuffix(".py").replace("/", ".")), func)
        assert hasattr(obj, "fn") and hasattr(obj, "with_options"), deployment["entrypoint"]
        names.add(deployment["name"])
    assert {"acquire", "make-clips", "push-tasks", "sync-votes", "release", "build-dataset"} <= names
    sync = next(d for d in spec["deployments"] if d["name"] == "sync-votes")
    assert sync["schedules"][0]["interval"] == 600
