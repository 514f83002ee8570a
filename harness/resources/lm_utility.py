"""The resource behind the ``lm-utility/`` metrics: a base causal LM, a fine-tuning recipe and lm-eval tasks.

The runner hands one :class:`LMUtility` to every context of a ``synthbench lm-utility`` run (the need
``lm_eval``). It evaluates the base model once and fine-tunes each candidate once per seed, whatever
number of metrics read the results: the checkpoints are cached by (model, recipe, data fingerprint,
seed) in :mod:`harness.resources.causal_ft` and the evaluations by (model, tasks, settings) in
:mod:`harness.resources.lmeval`, so a rerun trains and evaluates nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class LMUtility:
    lm: object                    # LMSpec of the base model
    recipe: object                # causal_ft.FTRecipe
    seeds: list
    tasks: list                   # lmeval.TaskSpec
    folder: object                # the lm-eval task folder
    eval_kw: dict
    device: str
    train_device: str | None = None
    threads: int | None = None
    progress: bool = False
    max_memory: int | None = None  # bytes for fine-tuning and lm-eval (None: causal_ft.DEFAULT_MAX_MEMORY)
    log: object = print
    real: object | None = None     # Corpus of real training text (--real): the 1 of gap recovered
    timings: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    _base: dict | None = None
    _tuned: dict = field(default_factory=dict)

    def identity(self) -> dict:
        """What the numbers depend on (it enters every signature of the run)."""
        from harness.resources import lmeval as L

        return {"lm": self.lm.identity, "recipe": self.recipe.identity(), "seeds": list(self.seeds),
                "limit": self.eval_kw.get("limit"), "chat_template": self.eval_kw.get("apply_chat_template"),
                "lm_eval": L.lm_eval_version()}

    def base(self) -> dict:
        """{task label: TaskResult} of the base model."""
        from harness.resources import lmeval as L

        if self._base is None:
            t0 = time.perf_counter()
            self._base = L.evaluate({"pretrained": self.lm.location}, self.tasks, self.folder,
                                    model_key=self.lm.identity, max_memory=self.max_memory,
                                    progress=self.progress, **self.eval_kw)
            self.timings["eval:base"] = round(time.perf_counter() - t0, 2)
        return self._base

    def tuned(self, corpus) -> list[dict]:
        """Per seed, {task label: TaskResult} of the base model fine-tuned on ``corpus`` (an error is kept and
        raised again for every metric that asks, so a failed fine-tuning is not retried per metric)."""
        key = corpus.fingerprint
        if key not in self._tuned:
            try:
                self._tuned[key] = self._finetune(corpus)
            except Exception as e:  # noqa: BLE001  (recorded as every dependent metric's failure)
                self._tuned[key] = e
        got = self._tuned[key]
        if isinstance(got, Exception):
            raise got
        return got

    def _finetune(self, corpus) -> list[dict]:
        from harness.resources import lmeval as L
        from harness.resources.causal_ft import TrainSet, finetune

        data = TrainSet.from_corpus(corpus)
        runs, meta = [], []
        for seed in self.seeds:
            t1 = time.perf_counter()
            ck = finetune(self.lm, data, self.recipe, seed, device=self.train_device, threads=self.threads,
                          progress=self.progress, max_memory=self.max_memory)
            t2 = time.perf_counter()
            runs.append(L.evaluate(ck.lm_eval_args(), self.tasks, self.folder, model_key=f"lmft:{ck.key}",
                                   max_memory=self.max_memory, progress=self.progress, **self.eval_kw))
            self.timings[f"eval:{corpus.name}:{seed}"] = round(time.perf_counter() - t2, 2)
            self.timings[f"train:{corpus.name}:{seed}"] = round(t2 - t1, 2)
            m = ck.meta
            meta.append({"seed": seed, "key": ck.key, "cached": ck.cached, "tokens_trained": m.get("tokens_trained"),
                         "tokens_input": m.get("tokens_input"), "steps": m.get("steps"), "passes": m.get("passes"),
                         "train_seconds": m.get("seconds"), "device": m.get("device"),
                         "final_loss": (m.get("loss_curve") or [[None, None]])[-1][1]})
            self.log(f"  {corpus.name} seed {seed}: {'cached' if ck.cached else 'trained'} "
                     f"({m.get('tokens_trained'):,} tokens, {m.get('passes')} passes, {m.get('seconds')} s on "
                     f"{m.get('device')}); evaluated in {self.timings[f'eval:{corpus.name}:{seed}']} s")
        self.training[corpus.name] = meta
        return runs
