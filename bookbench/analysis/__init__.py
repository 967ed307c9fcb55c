"""Pure analysis: run-folder artifacts in, statistics, comparisons and verdicts out (never imports locust)."""
