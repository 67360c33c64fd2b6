"""``python -m tfs_standin``: the stand-in's tensorflow_model_server command line."""

import sys

from tfs_standin.cli import main

sys.exit(main())
