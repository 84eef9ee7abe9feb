"""Benchmarks: `python -m bench` measures genresult-mcp side by side with its anchors and prints ratios.

Each benchmark module measures one thing and returns `Row`s (the headline table, one target each) and
optional detail tables. Nothing here is a test: figures vary with the machine, the targets are what the
product promises (issue 5), and a missed target is a finding to fix, not a failure to silence.
"""
