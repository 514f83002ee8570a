"""Direct evaluation: scores computed on the data itself (the survey's faithfulness, diversity, distribution
distance, memorisation and contamination). One module per family; each metric is declared beside its function."""
