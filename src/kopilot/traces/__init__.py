"""Loaders for real traces and metric exports. Each validates its input and names file, line and reason."""
