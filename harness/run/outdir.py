"""The output folder: synthbench writes only where it may, atomically, and never loses a file it did not write.

A run writes into a folder only when the folder is new, empty, or one synthbench wrote before: it holds
the marker ``.synthbench`` (a JSON manifest of every file synthbench wrote there), or, for folders made
before the marker existed, a ``results.jsonl`` of synthbench records. Anything else is refused with one
line (exit 2); ``--force`` writes beside the files that are there but still never overwrites or deletes
one of them. Every file goes through :func:`write_bytes`: to a temporary name in the same folder, fsync,
rename, so a reader sees the old file or the new one, and a full disk or a read-only folder ends in one
line and no partial file. Records, flags and the manifest are merged under an advisory lock
(``.synthbench.lock``), so two runs into one folder at once both keep their work.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path

from harness.errors import UserError

MARKER = ".synthbench"
LOCK = ".synthbench.lock"
#: files a synthbench run writes at the top of its folder (a folder from before the marker is adopted by these)
OWN_TOP = ("results.jsonl", "run.json", "report.md", "leaderboard.md", "index.html", "flags.jsonl",
           "flags.parquet", "lm-utility.md", "validity.json", "validity.md", ".gitignore")
OWN_DIRS = ("rows", "figures", "raw")

_claimed: dict[Path, set[str]] = {}  # claimed root (resolved) -> its manifest, relative POSIX paths


def check_path(out, flag: str = "--out") -> Path:
    """``out`` as a Path, refusing what is surely a mistake: an empty value (an unset shell variable)."""
    if out is None or not str(out).strip():
        raise UserError(f"{flag} is empty (an unset shell variable?)", f"give a folder, e.g. {flag} results/run1")
    return Path(str(out)).expanduser()


def _is_synthbench_results(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.strip():
                    d = json.loads(line)
                    return isinstance(d, dict) and "signature_key" in d and "metric" in d
    except (OSError, ValueError):
        return False
    return False


def _is_row_file(path: Path, rel: str) -> bool:
    """A result's findings as :func:`harness.run.flags.save_rows` writes them: ``rows/<key>.json`` holding a
    JSON object with that signature key, a metric and the rows by reason. Only synthbench writes such a
    file; one restored by git (a committed report's) is taken back instead of refused."""
    parts = rel.split("/")
    if len(parts) != 2 or parts[0] != "rows" or not parts[1].endswith(".json"):
        return False
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (isinstance(d, dict) and d.get("signature_key") == parts[1][:-5] and isinstance(d.get("metric"), str)
            and isinstance(d.get("rows"), dict) and "format" in d)


def _written_before(root: Path) -> bool:
    """A folder synthbench wrote before the marker existed (or whose marker git does not keep): its
    results.jsonl holds synthbench records, its report.md is a synthbench report, or its run.json /
    validity.json names the harness version that wrote it."""
    if _is_synthbench_results(root / "results.jsonl"):
        return True
    for name in ("report.md", "leaderboard.md"):  # the rendered report of a run (committed reports keep only it)
        try:
            with (root / name).open(encoding="utf-8", errors="replace") as f:
                first = f.readline().strip()  # "# synthbench report" or, since the scorecard, "...: NAME"
                if first == "# synthbench report" or first.startswith("# synthbench report: "):
                    return True
        except OSError:
            pass
    for name in ("run.json", "validity.json"):
        try:
            d = json.loads((root / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(d, dict) and ("harness" in d or "harness" in (d.get("meta") or {})):
            return True
    return False


def _listing(root: Path) -> list[str]:
    """Every file under ``root`` (relative POSIX paths), the marker and lock left out."""
    out = []
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            rel = (Path(dirpath) / f).relative_to(root).as_posix()
            if rel not in (MARKER, LOCK) and not f.endswith(".tmp"):
                out.append(rel)
    return sorted(out)


def _own_name(rel: str) -> bool:
    return rel in OWN_TOP or rel.split("/", 1)[0] in OWN_DIRS


def _oserror(path: Path, e: OSError) -> UserError:
    why = e.strerror or str(e)
    if e.errno == errno.ENOSPC:
        fix = "free some disk space (or choose an --out folder on another disk) and rerun: finished results are kept"
    elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "choose an --out folder you can write to"
    elif e.errno in (errno.ENOTDIR, errno.EEXIST):
        fix = "an --out path must be a folder (new or empty), not a file; choose another"
    else:
        fix = "choose another --out folder"
    return UserError(f"{path}: cannot write ({why})", fix)


def _read_manifest(root: Path) -> set[str]:
    try:
        d = json.loads((root / MARKER).read_text(encoding="utf-8"))
        return set(d.get("files", [])) if isinstance(d, dict) else set()
    except (OSError, ValueError):
        return set()


def _write_manifest(root: Path, files: set[str]) -> None:
    from harness import __version__
    from harness.resources.cache import atomic_write_text

    body = {"written_by": "synthbench", "harness": __version__,
            "note": "synthbench writes into this folder and overwrites only the files listed here",
            "files": sorted(files)}
    try:
        atomic_write_text(root / MARKER, json.dumps(body, indent=1) + "\n")
    except OSError as e:
        raise _oserror(root / MARKER, e) from None


def claim(out, force: bool = False, flag: str = "--out") -> Path:
    """Make ``out`` a folder this process may write into, or refuse with one line (exit 2).

    New, empty, marked or (pre-marker) synthbench folders are taken; a folder holding other files only
    with ``force``, and then those files stay protected. Checks writability at once (the marker is the
    first file written), so an unwritable location fails before any work.
    """
    root = check_path(out, flag)
    if root.exists() and not root.is_dir():
        raise UserError(f"{flag} {root}: is a file, not a folder", "give a new or empty folder (or one synthbench wrote)")
    key = root.resolve()
    if key in _claimed and (root / MARKER).exists():
        return root  # claimed earlier in this process and still ours (a removed folder is checked again)
    present = _listing(root) if root.is_dir() else []  # the lock and temporary files of a run starting now do not count
    if (root / MARKER).exists():
        files = _read_manifest(root)
    elif present:
        if _written_before(root):
            files = {rel for rel in present if _own_name(rel)}  # a folder synthbench wrote before the marker
        elif force:
            clash = [rel for rel in present if _own_name(rel) and "/" not in rel]
            if clash:
                raise UserError(f"{flag} {root}: --force would overwrite {', '.join(clash[:4])}, which synthbench "
                                "did not write", "move them away, or choose a new or empty folder")
            files = set()
        else:
            shown = ", ".join(present[:4]) + (f", … ({len(present)} files)" if len(present) > 4 else "")
            raise UserError(f"{flag} {root}: holds files synthbench did not write ({shown})",
                            "choose a new or empty folder, or pass --force to write synthbench's files beside them "
                            "(files it did not write are never overwritten or deleted)")
    else:
        files = set()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _oserror(root, e) from None
    with lock(root):
        files |= _read_manifest(root)
        _write_manifest(root, files)
    _claimed[key] = files
    return root


def _root_of(path: Path) -> tuple[Path, str] | None:
    p = path.resolve() if path.is_absolute() or path.exists() else (Path.cwd() / path).resolve()
    for root in sorted(_claimed, key=lambda r: -len(r.parts)):  # the innermost claimed folder
        try:
            return root, p.relative_to(root).as_posix()
        except ValueError:
            continue
    return None


_held: dict[Path, int] = {}  # folder -> depth of this process' hold (flock is per open file, not per process)


@contextlib.contextmanager
def lock(root: Path):
    """An exclusive advisory lock on the folder (``fcntl.flock``; a no-op where that does not exist).

    Re-entrant within one process: a flush that holds it may write files that take it again.
    """
    key = Path(root).resolve()
    if _held.get(key):
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    try:
        fd = os.open(key / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise _oserror(key / LOCK, e) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _held[key] = 1
        yield
    finally:
        _held.pop(key, None)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically; inside a claimed folder, only over a file synthbench wrote.

    An OSError (full disk, read-only folder, a file where a folder should be) becomes one line, and the
    temporary file is removed, so nothing is half-written.
    """
    path = Path(path)
    where = _root_of(path)
    if where is None:
        _atomic(path, data)
        return
    root, rel = where
    with lock(root):  # the check, the write and the manifest entry as one step for every run into the folder
        files = _claimed[root]
        if rel not in files and path.exists():
            files |= _read_manifest(root)  # another run into this folder may have written it
            if rel not in files and not _is_row_file(path, rel):
                raise UserError(f"{path}: exists and was not written by synthbench (it is kept)",
                                "move it out of the output folder, or choose another --out folder")
        _atomic(path, data)
        if rel not in files:
            files |= _read_manifest(root)
            files.add(rel)
            _write_manifest(root, files)


def _atomic(path: Path, data: bytes) -> None:
    from harness.resources.cache import atomic_write_bytes

    try:
        atomic_write_bytes(path, data)
    except OSError as e:
        raise _oserror(path, e) from None


def write_text(path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def remove(path) -> bool:
    """Delete ``path`` if synthbench wrote it (a claimed folder's manifest lists it); False otherwise."""
    path = Path(path)
    where = _root_of(path)
    if where is None:
        return False
    root, rel = where
    with lock(root):
        files = _claimed[root]
        files |= _read_manifest(root)
        if rel not in files:
            return False
        path.unlink(missing_ok=True)
        files.discard(rel)
        _write_manifest(root, files)
    return True


def release(out) -> None:
    """Forget a claim (tests; a long-lived process that is done with a folder)."""
    _claimed.pop(Path(out).expanduser().resolve(), None)
