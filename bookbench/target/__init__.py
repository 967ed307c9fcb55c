"""Target profiles: which booking API bookbench talks to, and how (see client.py)."""
