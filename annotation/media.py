"""What Label Studio may serve: the media root (its local-files document root) and each work directory's clips.

Label Studio serves a file to any signed-in user when the file lies under a Local Files storage of a
project, and in the community edition any user can add such a storage anywhere under the document root. So
the document root, the *media root*, holds nothing but clips: a work directory's ``clips`` folder reaches it
as a symbolic link ``<media root>/<work dir name>-<hash>`` made by push (Label Studio refuses a storage at
the document root itself), and that link is every project's storage. Manifests, tokens, passwords and Label
Studio's own data directory stay outside. Where ``WORKDIR/clips`` lies directly in the media root (the team
stack mounts only the clips volume into Label Studio's container, at ``WORKDIR/clips``), it is the storage
itself and no link is made.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from schemas.config import LabelStudioConfig

CLIPS_DIR = "clips"


class ServedTreeError(RuntimeError):
    """A private file or folder would be inside what Label Studio serves."""


def media_root(cfg: LabelStudioConfig, workdir: str | Path) -> Path:
    """Label Studio's local-files document root: ``labelstudio.media_root``, default ``WORKDIR/media``."""
    return Path(cfg.media_root or Path(workdir) / "media").expanduser().resolve()


def clips_storage(workdir: str | Path, root: str | Path) -> Path:
    """The path Label Studio reads ``WORKDIR/clips`` at, under the media root ``root`` (a link made here if
    needed); it is the Local Files storage of every project of this work directory."""
    clips = Path(workdir).expanduser().resolve() / CLIPS_DIR
    root = Path(root).expanduser().resolve()
    if clips.parent == root:
        return clips
    digest = hashlib.sha256(str(clips).encode()).hexdigest()[:10]
    link = root / f"{clips.parent.name}-{digest}"
    if link.is_symlink() or link.exists():
        if link.resolve() != clips.resolve():
            raise ServedTreeError(f"{link} should link to {clips} but points at {link.resolve()}; remove it")
        return link
    root.mkdir(parents=True, exist_ok=True)
    clips.mkdir(parents=True, exist_ok=True)
    link.symlink_to(clips, target_is_directory=True)
    return link


def clip_url(storage: Path, workdir: str | Path, rel_path: str) -> str:
    """The ``/data/local-files/`` URL of a clip file given relative to the work directory."""
    inside = Path(rel_path)
    if inside.is_absolute() or not inside.parts or inside.parts[0] != CLIPS_DIR or ".." in inside.parts:
        raise ServedTreeError(f"clip file {rel_path!r} of {workdir} is not under its clips/ folder, the only "
                              "folder Label Studio serves; re-run `ferv clips`")
    return f"/data/local-files/?d={storage.name}/{inside.relative_to(CLIPS_DIR).as_posix()}"


def served_folders(root: str | Path) -> list[Path]:
    """Every real folder Label Studio can serve from the media root: the root and its entries' targets."""
    root = Path(root).expanduser().resolve()
    entries = sorted(root.iterdir()) if root.is_dir() else []
    return [root, *(entry.resolve() for entry in entries)]


def check_served_tree(root: str | Path, private: Iterable[str | Path], served: Iterable[str | Path] = ()) -> None:
    """Raise :class:`ServedTreeError` when a ``private`` path (data directory, secret file, work directory
    with its manifests) lies inside the media root, inside a folder it links to, or inside ``served``."""
    folders = served_folders(root) + [Path(p).expanduser().resolve() for p in served]
    for path in (Path(p).expanduser().resolve() for p in private):
        for folder in folders:
            if path == folder or folder in path.parents:
                raise ServedTreeError(
                    f"{path} is inside {folder}, which Label Studio would serve to every annotator; keep the "
                    "Label Studio data directory, secrets and manifests outside labelstudio.media_root "
                    "(it must hold only clips)")
