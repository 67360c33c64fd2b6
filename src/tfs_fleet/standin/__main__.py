"""``python -m tfs_fleet.standin``: the stand-in's tensorflow_model_server command line."""

import sys

from tfs_fleet.standin.cli import main

sys.exit(main())
