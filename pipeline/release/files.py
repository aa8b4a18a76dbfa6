"""Writing release files idempotently (copy or hard link, stale files removed) and ``SHA256SUMS``.

Everything written here is meant to be shared: files are mode 0644 and folders 0755 whatever the umask
(a private umask such as 077 would otherwise make them unreadable to the people they are shared with)."""

from __future__ import annotations

import filecmp
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable

from pipeline.progress import ProgressFn, no_progress
from pipeline.release import layout
from schemas.ids import file_sha256

UNSUMMED = (layout.README, layout.SUMS)  # README.md carries the build time; SHA256SUMS cannot list itself
UNSUMMED_DIRS = (layout.EXPORTS_DIR,)
FILE_MODE, DIR_MODE = 0o644, 0o755


def _same(src: Path | bytes, dest: Path) -> bool:
    try:
        if isinstance(src, bytes):
            return dest.stat().st_size == len(src) and dest.read_bytes() == src
        if os.path.samefile(src, dest):
            return True
        return dest.stat().st_size == src.stat().st_size and filecmp.cmp(src, dest, shallow=False)
    except FileNotFoundError:
        return False


def make_dirs(folder: Path) -> None:
    """Create ``folder`` and its missing parents, each mode 0755."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
        path.chmod(DIR_MODE)


def share(path: Path) -> None:
    """Give a release file mode 0644 (a hard-linked file's other names get it too)."""
    if path.stat().st_mode & 0o7777 != FILE_MODE:
        path.chmod(FILE_MODE)


def place(src: Path, dest: Path, link: bool = False) -> None:
    """Copy (or hard-link) ``src`` to ``dest`` atomically, mode 0644."""
    make_dirs(dest.parent)
    tmp = dest.with_name(f".{dest.name}.part")
    tmp.unlink(missing_ok=True)
    if link:
        try:
            os.link(src, tmp)
        except OSError:  # another filesystem, or links not allowed: copy instead
            shutil.copyfile(src, tmp)
    else:
        shutil.copyfile(src, tmp)
    share(tmp)
    os.replace(tmp, dest)


def sync_files(out: Path, plan: dict[str, Path | bytes], managed: Iterable[str], link: bool = False,
               progress: ProgressFn = no_progress) -> int:
    """Make ``out/<rel>`` hold ``plan[rel]`` (a file to copy or link, or bytes) for every planned file, and
    remove every other file under the ``managed`` folders. Files already right are left alone; return how
    many were written."""
    expected = set(plan)
    for top in managed:
        root = out / top
        if not root.exists():
            continue
        for path in sorted(root.rglob("*"), reverse=True):
            rel = path.relative_to(out).as_posix()
            if path.is_dir():
                if not any(path.iterdir()):
                    path.rmdir()
            elif rel not in expected:
                path.unlink()
    written = 0
    total = len(plan)
    for done, rel in enumerate(sorted(plan), 1):
        dest = out / rel
        if not _same(plan[rel], dest):
            if isinstance(plan[rel], bytes):
                write_bytes(dest, plan[rel])
            else:
                place(plan[rel], dest, link)
            written += 1
        else:
            share(dest)
        if done % 500 == 0 or done == total:
            progress("release: files", done, total)
    return written


def write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically with ``data`` (mode 0644) unless it already holds exactly that."""
    if path.exists() and path.read_bytes() == data:
        share(path)
        return
    make_dirs(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.fchmod(fd, FILE_MODE)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def summed_files(out: Path) -> list[str]:
    """Every file of a release that ``SHA256SUMS`` covers, as sorted relative POSIX paths."""
    rels = []
    for path in out.rglob("*"):
        rel = path.relative_to(out).as_posix()
        if path.is_file() and rel not in UNSUMMED and not rel.startswith(tuple(f"{d}/" for d in UNSUMMED_DIRS)):
            rels.append(rel)
    return sorted(rels)


def _hash_all(out: Path, rels: list[str], progress: ProgressFn) -> list[str]:
    digests = []
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
        for done, digest in enumerate(pool.map(lambda r: file_sha256(out / r), rels), 1):
            digests.append(digest)
            if done % 1000 == 0 or done == len(rels):
                progress("release: checksums", done, len(rels))
    return digests


def sha256sums(out: Path, progress: ProgressFn = no_progress) -> bytes:
    """``SHA256SUMS`` in ``sha256sum`` format (``<hex>  <path>``), sorted by path."""
    rels = summed_files(out)
    digests = _hash_all(out, rels, progress)
    return "".join(f"{d}  {r}\n" for d, r in zip(digests, rels)).encode("utf-8")


def verify_sums(out: Path) -> list[str]:
    """Problems with ``SHA256SUMS``: missing, a listed file missing or changed, a file not listed."""
    sums = out / layout.SUMS
    if not sums.is_file():
        return [f"{sums}: missing; rebuild the release"]
    listed = {}
    for n, line in enumerate(sums.read_text(encoding="utf-8").splitlines(), 1):
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64:
            return [f"{sums}:{n}: not a sha256sum line: {line!r}"]
        listed[rel] = digest
    problems = []
    present = summed_files(out)
    for rel in sorted(set(present) - set(listed)):
        problems.append(f"{rel}: not listed in {layout.SUMS}")
    checked = sorted(set(listed) & set(present))
    for rel in sorted(set(listed) - set(present)):
        problems.append(f"{rel}: listed in {layout.SUMS} but missing")
    for rel, digest in zip(checked, _hash_all(out, checked, no_progress)):
        if digest != listed[rel]:
            problems.append(f"{rel}: checksum differs from {layout.SUMS}")
    return problems
