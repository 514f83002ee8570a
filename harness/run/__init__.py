"""Running: the runner (plans and computes) and the result store (results.jsonl, row flags)."""
