"""``python -m bench``: run the benchmark and write docs/benchmarks.md (see ``--help``)."""

import sys

from bench.cli import main

sys.exit(main())
