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
    env = os.environ.get("SYNTHBENCH_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "synthbench"


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
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=60)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS vec (h BLOB PRIMARY KEY, dim INTEGER, v BLOB, crc INTEGER)")
            cols = {r[1] for r in db.execute("PRAGMA table_info(vec)")}
            if "crc" not in cols:
                db.execute("ALTER TABLE vec ADD COLUMN crc INTEGER")
            self._db = db
        return self._db

    def get_many(self, keys: list[bytes]):
        """Return {key: np.ndarray} for the keys present and intact."""
        import numpy as np

        if not self.path.exists():
            return {}
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
        db = self._conn()
        with db:
            rows = []
            for k, v in items:
                b = v.astype("float32").tobytes()
                rows.append((k, int(v.shape[0]), b, zlib.crc32(b)))
            db.executemany("INSERT OR REPLACE INTO vec (h, dim, v, crc) VALUES (?, ?, ?, ?)", rows)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
