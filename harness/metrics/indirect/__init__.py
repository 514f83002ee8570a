"""Indirect evaluation: small models trained on the synthetic data and measured on real data (TSTR, learning
curves, mixes)."""
