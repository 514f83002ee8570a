"""Data in: loading files, frames and Hugging Face datasets into a Corpus (strict and lenient), row schemas,
suites (YAML validated into typed objects) and the built-in datasets."""
