"""Plumbing every layer may use: atomic files, lazy imports, optional engines, progress bars,
library versions, peak memory and the one parallel dispatch."""
