"""synthbench: evaluation harness for synthetic text datasets.

Importing this package does no work: no model loads, no directories are created.
"""

__version__ = "0.1.0"
