"""tfs-fleet serving stand-in: a TF-Serving-compatible CPU model server for development and tests.

It is NOT TensorFlow Serving. It speaks TF Serving's gRPC and REST APIs, takes the same flags and
the same container contract, and loads real SavedModels with TensorFlow's session-based loader,
so roles, playbooks and smoke tests can run where the official image cannot be pulled.

Only ``tfs_standin.server`` and the modules it loads import TensorFlow; the flag parser and
the JSON helpers do not, so bad flags fail fast.
"""

VERSION = "0.1.0"
BANNER = (
    f"tfs-fleet serving stand-in {VERSION}: a development and test tool, NOT TensorFlow Serving "
    "(CPU only, Python runtime, no batching performance)"
)
