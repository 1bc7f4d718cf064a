"""Hybrid-cloud placement engine for ML jobs."""

__version__ = "0.1.0"
