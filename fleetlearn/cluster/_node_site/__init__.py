"""The sitecustomize of a cluster node's Python processes (see sitecustomize.py)."""
