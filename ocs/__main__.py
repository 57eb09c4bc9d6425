"""``python -m ocs``: the same as the ``ocs`` command."""

from ocs.cli.main import main

main()
