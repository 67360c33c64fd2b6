"""Command line of the stand-in: ``tensorflow_model_server`` in the image, or
``python -m tfs_standin``. Exit codes: 0 clean shutdown (or --help/--version),
1 start-up failure (bad config file, model that does not load, port in use), 2 bad flags."""

from __future__ import annotations

import logging
import os
import sys

from tfs_standin import BANNER, VERSION
from tfs_standin.flags import FlagError, parse_flags, unimplemented_warnings, usage, validate

log = logging.getLogger("tfs_standin")


def _setup_logging() -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=os.environ.get("TFS_STANDIN_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s.%(msecs)03d %(levelname).1s standin] %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if any(a in ("--help", "-h", "--helpfull") for a in args):
        sys.stdout.write(f"{BANNER}\n{usage()}")
        return 0
    _setup_logging()
    try:
        options = parse_flags(args)
        if options.version:
            sys.stdout.write(
                f"TensorFlow ModelServer: tfs-fleet serving stand-in {VERSION} (NOT TF Serving)\n"
            )
            return 0
        validate(options)
    except FlagError as exc:
        log.error("%s", exc)
        sys.stderr.write("run with --help for the list of flags\n")
        return 2
    for warning in unimplemented_warnings(options):
        log.warning("%s", warning)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    from tfs_standin import server  # imports TensorFlow: only after the flags are good

    return server.run(options)
