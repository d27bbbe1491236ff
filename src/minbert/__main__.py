"""`python -m minbert ...` (and `torchrun -m minbert ...`) = the `minbert` command."""

import sys

from minbert.cli import main

sys.exit(main())
