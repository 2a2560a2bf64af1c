"""python -m metrics: the metrics command line (metrics.cli), imported behind the Ctrl-C guard of
``metrics.entry_point``."""

import sys

from metrics.entry_point import run_entry_point


def main(argv: list[str] | None = None) -> int:
    return run_entry_point("metrics.cli", "python -m metrics", argv)


if __name__ == "__main__":
    sys.exit(main())
