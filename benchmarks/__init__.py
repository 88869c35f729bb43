"""Throughput benchmarks: loader (DALI sparse and dense vs PyAV baseline), model step, end to end, codec sweep,
video-length sweep, shard build.

`python -m benchmarks report` runs every section and writes Markdown + JSON (and a PNG when matplotlib
is installed) under benchmarks/reports/.
"""
