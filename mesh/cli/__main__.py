"""``python -m mesh.cli``: the ``mesh`` command."""

import sys

from mesh.cli.main import main

sys.exit(main())
