"""tfs-fleet: the Python side of running TensorFlow Serving on a fleet of GPU servers."""

__version__ = "0.1.0"
