"""``python -m fastgd``: the ``fastgd`` command line."""

import sys

from fastgd.cli import main

sys.exit(main())
