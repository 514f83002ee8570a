"""Heavy backends (embedders, trainers, LM evaluation). Each imports its libraries inside functions."""
