"""`make bench`: the project's speed against what a user would otherwise run, as side-by-side
ratios measured in one run (this machine is shared and noisy; a ratio of interleaved samples
cancels most of that). See docs/bench.md for the method and the figures.

Modules: :mod:`stats` (median, percentile), :mod:`figures` (every figure's name, goal and
units), :mod:`report` (results.json, the markdown table), :mod:`server` (the in-process
stand-in on loopback), the measurements :mod:`client_ratio`, :mod:`cold_start`, :mod:`swap`,
:mod:`plots` and the command line :mod:`cli` (scripts/bench.py).
"""
