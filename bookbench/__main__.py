"""`python -m bookbench`: the same command line as the `bookbench` script."""

from bookbench.cli.app import main

# guarded: a spawned child process (the hostile suite's request generator) imports this module again
if __name__ == "__main__":
    main()
