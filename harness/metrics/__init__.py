"""The metric registry: names map to ``"module:function"`` strings plus fixed arguments.

Adding a metric touches one module, one line here and one test. Modules are imported only
when a metric is looked up, so ``import harness`` and ``synthbench --help`` stay fast.
"""

from __future__ import annotations

import fnmatch
import importlib
from dataclasses import dataclass

REGISTRY: dict[str, tuple[str, dict]] = {
    # lexical diversity
    "lexical/distinct-1": ("harness.metrics.lexical:distinct_n", {"n": 1}),
    "lexical/distinct-2": ("harness.metrics.lexical:distinct_n", {"n": 2}),
    "lexical/distinct-3": ("harness.metrics.lexical:distinct_n", {"n": 3}),
    "lexical/distinct-4": ("harness.metrics.lexical:distinct_n", {"n": 4}),
    "lexical/entropy-1": ("harness.metrics.lexical:ngram_entropy", {"n": 1}),
    "lexical/entropy-2": ("harness.metrics.lexical:ngram_entropy", {"n": 2}),
    "lexical/entropy-3": ("harness.metrics.lexical:ngram_entropy", {"n": 3}),
    "lexical/compression-ratio": ("harness.metrics.lexical:compression_ratio", {}),
    "lexical/mattr": ("harness.metrics.lexical:mattr", {"window": 50, "order": "hashed"}),
    "lexical/vocab-size": ("harness.metrics.lexical:vocab_size", {}),
    # --- published diversity scores, fast (issue 10) ---
    "lexical/self-bleu": ("harness.metrics.homogenization:self_bleu", {"max_n": 4, "tokenizer": "13a"}),
    "lexical/homogenization-bleu": ("harness.metrics.homogenization:homogenization_bleu",
                                    {"max_order": 4, "tokenizer": "13a"}),
    "lexical/homogenization-rougel": ("harness.metrics.homogenization:homogenization_rougel",
                                      {"tokenizer": "rouge", "max_work": 2e9, "pairs": 200_000}),
    "lexical/ngram-diversity": ("harness.metrics.homogenization:ngram_diversity", {"max_n": 4}),
    "length/mean-words": ("harness.metrics.lexical:length_mean", {}),
    "length/std-words": ("harness.metrics.lexical:length_std", {}),
    # duplicates
    "dup/exact-rate": ("harness.metrics.duplicates:exact_duplicate_rate", {}),
    "dup/near-rate": ("harness.metrics.duplicates:near_duplicate_rate",
                      {"threshold": 0.8, "shingle": 5, "num_perm": 128}),
    # semantic diversity
    "semantic/pairwise-cosine-distance": ("harness.metrics.semantic:mean_pairwise_cosine_distance", {}),
    # --- semantic diversity and surface divergences (issue 3) ---
    "semantic/vendi": ("harness.metrics.semantic:vendi", {}),
    "semantic/chamfer": ("harness.metrics.semantic:chamfer", {"max_queries": 10_000}),
    "semantic/cluster-entropy": ("harness.metrics.semantic:cluster_entropy", {"k": 20, "merge": 0.6}),
    "semantic/ref-cluster-coverage": ("harness.metrics.semantic:ref_cluster_coverage", {"k": 50}),
    "semantic/aps": ("harness.metrics.semantic:aps", {}),
    "perclass/vendi": ("harness.metrics.semantic:perclass_vendi", {}),
    "surface/label-jsd": ("harness.metrics.surface:label_jsd", {}),
    "surface/label-chi2": ("harness.metrics.surface:label_chi2_v", {}),
    "surface/length-ks": ("harness.metrics.surface:length_ks", {}),
    "surface/length-wasserstein": ("harness.metrics.surface:length_wasserstein", {}),
    "surface/vocab-jsd": ("harness.metrics.surface:vocab_jsd", {}),
    "surface/oov-rate": ("harness.metrics.surface:oov_rate", {}),
    # --- distribution distance on embeddings (issue 3) ---
    "distance/mauve": ("harness.metrics.distance:mauve_score", {"seeds": 5, "max_rows": 2500}),
    "distance/frechet": ("harness.metrics.distance:frechet_distance", {}),
    "distance/mmd": ("harness.metrics.distance:mmd_rbf", {"permutations": 200, "max_exact": 4000, "subsample": 2000}),
    "distance/precision": ("harness.metrics.distance:prdc_precision", {"k": 5, "max_rows": 10000}),
    "distance/recall": ("harness.metrics.distance:prdc_recall", {"k": 5, "max_rows": 10000}),
    "distance/density": ("harness.metrics.distance:prdc_density", {"k": 5, "max_rows": 10000}),
    "distance/coverage": ("harness.metrics.distance:prdc_coverage", {"k": 5, "max_rows": 10000}),
    "distance/c2st-embed": ("harness.metrics.distance:c2st_embed", {"folds": 5, "max_rows": 5000}),
    "distance/c2st-tfidf": ("harness.metrics.distance:c2st_tfidf", {"folds": 5, "max_rows": 5000}),
    "perclass/precision": ("harness.metrics.distance:perclass_precision", {"k": 5, "min_rows": 6}),
    "perclass/recall": ("harness.metrics.distance:perclass_recall", {"k": 5, "min_rows": 6}),
    "perclass/coverage": ("harness.metrics.distance:perclass_coverage", {"k": 5, "min_rows": 6}),
    "perclass/mauve": ("harness.metrics.distance:perclass_mauve", {"seeds": 3, "min_rows": 20}),
    # --- faithfulness, memorisation and contamination (issue 4) ---
    "memo/exact-copy-rate": ("harness.metrics.faithfulness:exact_copy_rate", {}),
    "memo/ngram-overlap-rate": ("harness.metrics.faithfulness:ngram_overlap_rate", {"n": 13}),
    "memo/dcr-closer-than-holdout": ("harness.metrics.faithfulness:dcr_closer_than_holdout", {"quantile": 0.05}),
    "contam/test-ngram-overlap": ("harness.metrics.faithfulness:test_ngram_overlap", {"n": 13}),
    "contam/test-near-match": ("harness.metrics.faithfulness:test_near_match", {"threshold": 0.95}),
    "faith/reference-agreement": ("harness.metrics.faithfulness:reference_agreement", {"C": 10.0}),
    "faith/label-issue-rate": ("harness.metrics.faithfulness:label_issue_rate", {"folds": 5, "C": 10.0, "min_rows": 5}),
    # --- utility: train on synthetic, test on real (issue 5) ---
    "utility/tfidf-lr/accuracy": ("harness.metrics.utility:accuracy", {"recipe": "tfidf-lr", "seeds": 3}),
    "utility/tfidf-lr/macro-f1": ("harness.metrics.utility:macro_f1", {"recipe": "tfidf-lr", "seeds": 3}),
    "utility/tfidf-lr/gap": ("harness.metrics.utility:gap", {"recipe": "tfidf-lr", "seeds": 3}),
    "utility/tfidf-lr/real-equivalent": ("harness.metrics.utility:real_equivalent", {"recipe": "tfidf-lr", "seeds": 3}),
    "utility/tfidf-lr/mix-gain": ("harness.metrics.utility:mix_gain", {"recipe": "tfidf-lr", "seeds": 3, "k": 100}),
    "utility/minilm-lr/accuracy": ("harness.metrics.utility:accuracy_embed", {"recipe": "minilm-lr", "seeds": 3}),
    "utility/minilm-lr/macro-f1": ("harness.metrics.utility:macro_f1_embed", {"recipe": "minilm-lr", "seeds": 3}),
    "utility/minilm-lr/gap": ("harness.metrics.utility:gap_embed", {"recipe": "minilm-lr", "seeds": 3}),
    "utility/minilm-lr/real-equivalent": ("harness.metrics.utility:real_equivalent_embed", {"recipe": "minilm-lr", "seeds": 3}),
    "utility/minilm-lr/mix-gain": ("harness.metrics.utility:mix_gain_embed", {"recipe": "minilm-lr", "seeds": 3, "k": 100}),
    "utility/minilm-ft/accuracy": ("harness.metrics.utility:accuracy", {"recipe": "minilm-ft", "seeds": 3}),
    "utility/minilm-ft/macro-f1": ("harness.metrics.utility:macro_f1", {"recipe": "minilm-ft", "seeds": 3}),
    "utility/minilm-ft/gap": ("harness.metrics.utility:gap", {"recipe": "minilm-ft", "seeds": 3}),
    # --- fluency (issue 4) ---
    "fluency/perplexity-median": ("harness.metrics.fluency:perplexity_median",
                                  {"field": "auto", "max_length": 512, "min_tokens": 5}),
    "fluency/perplexity-p90": ("harness.metrics.fluency:perplexity_p90",
                               {"field": "auto", "max_length": 512, "min_tokens": 5}),
    "fluency/perplexity-ratio": ("harness.metrics.fluency:perplexity_ratio",
                                 {"field": "auto", "max_length": 512, "min_tokens": 5, "alpha": 0.01}),
    # --- format validity and instruction faithfulness (issue 4) ---
    "format/invalid-rate": ("harness.metrics.format:invalid_rate", {}),
    "instr/relevance": ("harness.metrics.instruction:relevance", {}),
    "instr/relevance-low-rate": ("harness.metrics.instruction:relevance_low_rate",
                                 {"quantile": 0.95, "max_pairs": 2_000_000}),
    "instr/grounding": ("harness.metrics.instruction:grounding", {"min_tokens": 2, "flag_below": 0.5}),
    "instr/empty-rate": ("harness.metrics.instruction:empty_rate", {}),
    "instr/truncated-rate": ("harness.metrics.instruction:truncated_rate", {"long_words": 100}),
    "instr/refusal-rate": ("harness.metrics.instruction:refusal_rate", {}),
    "instr/instruction-copy-rate": ("harness.metrics.instruction:instruction_copy_rate", {}),
    # --- judge ---
    "judge/label-correctness": ("harness.metrics.judge:label_correctness",
                                {"rubric": "label_correctness", "max_rows": 200, "max_chars": 1500}),
    "judge/label-reliability": ("harness.metrics.judge:label_reliability",
                                {"rubric": "label_correctness", "max_rows": 200, "max_chars": 1500}),
    "judge/classifier-kappa": ("harness.metrics.judge:classifier_kappa",
                               {"rubric": "label_correctness", "max_rows": 200, "max_chars": 1500, "C": 10.0}),
    "judge/instruction-following": ("harness.metrics.judge:instruction_following",
                                    {"rubric": "instruction_following", "max_rows": 200, "max_chars": 1500}),
    "judge/factual-consistency": ("harness.metrics.judge:factual_consistency",
                                  {"rubric": "factual_consistency", "max_rows": 200, "max_chars": 1500}),
    "judge/pairwise-win-rate": ("harness.metrics.judge:pairwise_win_rate",
                                {"rubric": "pairwise_preference", "max_pairs": 100, "max_chars": 1500}),
}

# Metrics that run only when asked for by name, group or glob (they take minutes, not seconds).
OPT_IN: list[str] = [
    "utility/minilm-ft/*",
    "fluency/*",  # a 135M causal LM on 2 CPU cores: tens of tokens/s under load (bench/perplexity.py)
    "judge/*",  # an LLM judge: a server to start (or an API to pay), about one row per second locally (bench/judge.py)
]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    target: str
    args: dict

    @property
    def fn(self):
        module, attr = self.target.split(":")
        return getattr(importlib.import_module(module), attr)

    @property
    def info(self):
        return self.fn.info

    def __call__(self, ctx):
        return self.fn(ctx, **self.args)


def get(name: str) -> MetricSpec:
    target, args = REGISTRY[name]
    return MetricSpec(name, target, dict(args))


def names() -> list[str]:
    return list(REGISTRY)


def select(patterns: list[str] | None) -> list[MetricSpec]:
    """Expand names, groups ('lexical'), prefixes ('utility/tfidf-lr') and globs ('lexical/distinct-*') into specs.

    With no patterns: every metric except the opt-in ones (OPT_IN). A group ('utility') leaves them out
    too; a prefix ('utility/minilm-ft') or glob with a slash names them.
    """
    from ..errors import UserError

    if not patterns:
        return [get(n) for n in REGISTRY if not any(fnmatch.fnmatch(n, p) for p in OPT_IN)]
    chosen: list[str] = []
    for pat in patterns:
        pat = pat.strip()
        if not pat:
            continue
        hits = [n for n in REGISTRY if n == pat or n.split("/")[0] == pat or n.startswith(pat.rstrip("/") + "/")
                or fnmatch.fnmatch(n, pat)]
        if "/" not in pat:  # a whole group leaves out its opt-in members; name them by prefix or glob
            # (unless every member is opt-in, as for 'fluency': then the group name names them all)
            hits = [n for n in hits if n == pat or not any(fnmatch.fnmatch(n, p) for p in OPT_IN)] or hits
        if not hits:
            groups = sorted({n.split("/")[0] for n in REGISTRY})
            raise UserError(f"--metrics: no metric or group named '{pat}'",
                            f"run 'synthbench metrics' for the list (groups: {', '.join(groups)})")
        chosen += [h for h in hits if h not in chosen]
    return [get(n) for n in REGISTRY if n in chosen]
