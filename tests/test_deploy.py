"""The team deployment files are valid and private by default: docker-compose.yml (offline validation), the
secrets check that runs before the stack starts, and prefect.yaml."""

import importlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
GOOD = {"POSTGRES_PASSWORD": "Pg-2f9c81d0aa", "LABEL_STUDIO_PASSWORD": "Ls-77e0b1c3d4",
        "LABEL_STUDIO_TOKEN": "ab12" * 10, "PREFECT_AUTH_STRING": "admin:Pf-5b2e9d8c71"}


@pytest.fixture
def compose_env(tmp_path):
    return dict(os.environ, **GOOD)


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

    assert sources("worker") & sources("labelstudio") == {"ferv-clips"}  # Label Studio never sees the manifests
    ls = services["labelstudio"]
    assert ls["environment"]["LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK"] == "true"
    assert ls["environment"]["SENTRY_DSN"] == "" and ls["environment"]["COLLECT_ANALYTICS"] == "false"
    clips = next(v for v in ls["volumes"] if v.startswith("ferv-clips:"))
    assert clips == f"ferv-clips:{ls['environment']['LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT']}/clips:ro"
    assert clips.split(":")[1] in {v.split(":")[1] for v in services["worker"]["volumes"]}  # same path in both


def test_compose_publishes_ports_on_localhost_and_protects_the_prefect_api(compose_env):
    config = yaml.safe_load(_compose(compose_env, "config").stdout)
    services = config["services"]
    ports = [p for s in services.values() for p in s.get("ports", [])]
    assert len(ports) == 2 and all(p.startswith("127.0.0.1:") for p in ports)
    assert "ports" not in services["postgres"]
    auth = GOOD["PREFECT_AUTH_STRING"]
    assert services["prefect-server"]["environment"]["PREFECT_SERVER_API_AUTH_STRING"] == auth
    assert services["worker"]["environment"]["PREFECT_API_AUTH_STRING"] == auth
    for name, service in services.items():
        if name != "secrets-check":
            assert service["depends_on"]["secrets-check"]["condition"] == "service_completed_successfully", name


def test_the_worker_reads_the_label_studio_url_and_work_directory_from_the_environment(compose_env, monkeypatch):
    from schemas.config import load_config

    worker = yaml.safe_load(_compose(compose_env, "config").stdout)["services"]["worker"]
    for name in ("FERV_LS_URL", "FERV_WORKDIR", "FERV_LS_MEDIA_ROOT"):
        monkeypatch.setenv(name, worker["environment"][name])
    cfg = load_config(ROOT / "configs" / "ferv39k.yaml")  # its workdir is relative: work/ferv39k
    assert cfg.labelstudio.url == "http://labelstudio:8080" and cfg.workdir == "/data/work"
    assert cfg.labelstudio.media_root == "/data/work"
    assert any(v.split(":")[1] == "/data" for v in worker["volumes"] if v.startswith("ferv-data:"))


def _check_secrets(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(ROOT / "deploy" / "check-secrets.sh")], env={"PATH": os.environ["PATH"], **env},
                          capture_output=True, text=True)


def test_placeholder_or_weak_secrets_are_refused_at_start():
    example = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                   if "=" in line and not line.startswith("#"))
    refused = _check_secrets(example)
    assert refused.returncode == 1
    for name in ("POSTGRES_PASSWORD", "LABEL_STUDIO_PASSWORD", "LABEL_STUDIO_TOKEN", "PREFECT_AUTH_STRING"):
        assert f"refusing to start: {name}" in refused.stderr
    assert _check_secrets(GOOD).returncode == 0
    for name, weak in [("POSTGRES_PASSWORD", "short"), ("LABEL_STUDIO_TOKEN", "x" * 40),
                       ("PREFECT_AUTH_STRING", "no-colon-but-long"), ("LABEL_STUDIO_PASSWORD", "")]:
        proc = _check_secrets({**GOOD, name: weak})
        assert proc.returncode == 1 and proc.stderr.count("refusing") == 1 and name in proc.stderr, (name, proc.stderr)


def test_compose_refuses_to_start_without_secrets():
    env = {k: v for k, v in os.environ.items() if k not in GOOD}
    proc = _compose(env, "config", "-q")
    assert proc.returncode != 0 and "POSTGRES_PASSWORD" in proc.stderr + proc.stdout


def test_env_example_names_every_required_variable():
    example = (ROOT / ".env.example").read_text()
    for name in GOOD:
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
