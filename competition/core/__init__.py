"""Foundations every layer may use: io, paths, metrics, provenance, plugin loading, overrides."""
