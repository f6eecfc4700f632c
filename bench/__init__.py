"""The scheduler benchmark of issue 5: our scheduler + dispatcher beside LangGraph and the bounds.

Run with: `python -m bench.run` (add `--quick` for a short smoke run).
"""
