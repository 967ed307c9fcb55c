"""Rendering only: charts and HTML pages from the analysis's models (no statistics here)."""
