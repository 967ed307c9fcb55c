"""bookbench: load scenarios, run orchestration, checks and the command line."""
