"""The `bookbench` command line: one short module per command; the only place that knows exit codes."""
