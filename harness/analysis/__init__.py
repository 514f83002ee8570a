"""Analyses over results and data: research comparisons, metric-utility correlation, validity experiments."""
