"""Reports are pure functions of results (and the run's metadata): they never recompute."""
