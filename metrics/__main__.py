"""python -m metrics: the metrics command line (metrics.cli)."""

import sys

from metrics.cli import main

if __name__ == "__main__":
    sys.exit(main())
