"""Content-addressed disk cache, outside the package.

Location: ``$SYNTHBENCH_CACHE`` or ``~/.cache/synthbench``. Nothing is created until the
first write. Writes are atomic (temporary file + ``os.replace``).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import zlib
from pathlib import Path


def cache_root() -> Path:
    """The cache folder; a path that exists and is not a folder is refused with one line (exit 2)."""
    env = os.environ.get("SYNTHBENCH_CACHE")
    if env:
        root, what = Path(env).expanduser(), f"SYNTHBENCH_CACHE={env}"
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root, what = Path(base) / "synthbench", f"the cache folder {Path(base) / 'synthbench'}"
    if root.exists() and not root.is_dir():
        from harness.errors import UserError

        raise UserError(f"{what}: is a file, not a folder",
                        "point SYNTHBENCH_CACHE at a folder (or move the file away)")
    return root


def _warn(msg: str) -> None:
    import sys

    print(f"warning: {msg}", file=sys.stderr)


def _mkdir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        from harness.errors import UserError

        raise UserError(f"{path}: cannot create the cache folder ({e.strerror})",
                        "set SYNTHBENCH_CACHE to a folder you can write to") from None


def move_aside(path: Path, why: str, what: str = "cache file") -> Path:
    """Move a damaged cache file (and SQLite's -wal/-shm beside it) to ``<name>.damaged-<n>``, say so in one
    line, and return where it went; the caller rebuilds the cache from scratch."""
    n = 1
    while path.with_name(f"{path.name}.damaged-{n}").exists():
        n += 1
    target = path.with_name(f"{path.name}.damaged-{n}")
    os.replace(path, target)
    for ext in ("-wal", "-shm"):
        side = path.with_name(path.name + ext)
        if side.exists():
            os.replace(side, target.with_name(target.name + ext))
    _warn(f"the {what} {path} was damaged ({why}); moved it to {target.name} and started a new one "
          "(its entries are recomputed)")
    return target


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``: readers see the
    old file or the new one, never a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _file_mode())  # mkstemp makes 0600; results and reports are for reading
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _is_damage(e: Exception) -> bool:
    """An SQLite error that means the file itself is damaged (not a lock, a full disk or a permission)."""
    msg = str(e).lower()
    return "not a database" in msg or "malformed" in msg or type(e) is sqlite3.DatabaseError


def _cache_error(path: Path, e: Exception):
    from harness.errors import UserError

    full = "full" in str(e).lower()
    return UserError(f"{path}: the cache cannot be written ({e})",
                     "free some disk space and rerun" if full else "set SYNTHBENCH_CACHE to a folder you can write to")


class VectorStore:
    """Per-model store of float32 vectors keyed by a 16-byte text hash (SQLite, WAL).

    Each row also stores the vector's dimension and a CRC-32 of its bytes, so a truncated,
    foreign or damaged blob is detected and recomputed rather than returned. (Stores written
    before the checksum column existed get it added; their old rows are checked by length only.)
    """

    def __init__(self, path: Path):
        self.path = path
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            _mkdir(self.path.parent)
            try:
                self._db = self._open()
            except sqlite3.DatabaseError as e:  # overwritten or truncated: not a database any more
                if not _is_damage(e):
                    raise _cache_error(self.path, e) from None
                self._damaged(e)
                self._db = self._open()
        return self._db

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=60)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS vec (h BLOB PRIMARY KEY, dim INTEGER, v BLOB, crc INTEGER)")
            cols = {r[1] for r in db.execute("PRAGMA table_info(vec)")}
            if "crc" not in cols:
                db.execute("ALTER TABLE vec ADD COLUMN crc INTEGER")
            db.execute("SELECT count(*) FROM (SELECT h FROM vec LIMIT 1)").fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _damaged(self, e: Exception) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self.path.exists():
            move_aside(self.path, str(e).splitlines()[0] if str(e) else type(e).__name__, "vector cache")

    def get_many(self, keys: list[bytes]):
        """Return {key: np.ndarray} for the keys present and intact."""

        if not self.path.exists():
            return {}
        try:
            return self._get_many(keys)
        except sqlite3.DatabaseError as e:  # damaged past the header: the pages a query reads are not a b-tree
            if not _is_damage(e):
                raise
            self._damaged(e)
            return {}

    def _get_many(self, keys: list[bytes]):
        import numpy as np

        db = self._conn()
        found = {}
        step = 900  # below SQLite's default variable limit
        for i in range(0, len(keys), step):
            chunk = keys[i:i + step]
            q = f"SELECT h, dim, v, crc FROM vec WHERE h IN ({','.join('?' * len(chunk))})"
            for h, dim, v, crc in db.execute(q, chunk):
                if not dim or not isinstance(v, bytes) or len(v) != 4 * dim:
                    continue
                if crc is not None and zlib.crc32(v) != crc:
                    continue  # damaged: the caller recomputes and overwrites it
                found[bytes(h)] = np.frombuffer(v, dtype=np.float32)
        return found

    def put_many(self, items) -> None:
        rows = []
        for k, v in items:
            b = v.astype("float32").tobytes()
            rows.append((k, int(v.shape[0]), b, zlib.crc32(b)))
        try:
            self._put(rows)
        except sqlite3.DatabaseError as e:
            if not _is_damage(e):
                if "locked" in str(e):
                    raise
                raise _cache_error(self.path, e) from None
            self._damaged(e)
            self._put(rows)

    def _put(self, rows) -> None:
        db = self._conn()
        with db:
            db.executemany("INSERT OR REPLACE INTO vec (h, dim, v, crc) VALUES (?, ?, ?, ?)", rows)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
