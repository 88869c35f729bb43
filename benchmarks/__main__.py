import sys

from benchmarks.cli import main

if __name__ == "__main__":  # DALI's source workers may start by spawn, which imports this module again
    sys.exit(main())
