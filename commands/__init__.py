"""The edges: what the ``safra`` command runs (the CLI, the demo, the local stack supervisor).

Imports every layer below it; nothing imports it.
"""
