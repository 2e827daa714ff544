"""``python -m trainhub`` runs the CLI."""

import sys

from trainhub.cli import main

sys.exit(main())
