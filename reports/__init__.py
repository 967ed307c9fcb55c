"""Analysis, verdicts, charts and HTML reports built from run folders (never imports locust)."""
