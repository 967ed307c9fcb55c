"""`python -m bookbench`: the same command line as the `bookbench` script."""

from bookbench.cli.app import main

main()
