"""`python -m featwidget ...` is the `featwidget` command (for environments where scripts are not on PATH)."""
import sys

from .cli import main

sys.exit(main())
