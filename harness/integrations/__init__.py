"""Faces of the harness inside other tools (Hugging Face ``evaluate`` modules)."""
