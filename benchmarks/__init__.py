"""Benchmarks (``nox -s bench``): Periodic's DatabaseScheduler next to stock Beat and RedBeat.

Not timed tests: a run prints and writes figures, as ratios to anchors measured in the same run
on the same machine (docs/benchmarks.md). See `benchmarks.run` for the workloads.
"""
