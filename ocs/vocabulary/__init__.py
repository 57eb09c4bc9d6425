"""The words every layer shares: domain values (types) and request-level errors.

The bottom of the import graph (STYLE.md rule 16): it imports nothing of the
project, so ``store/``, ``policy/``, ``charging/`` and the front ends can all
speak it without depending on each other.
"""
