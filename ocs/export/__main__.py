"""``python -m ocs.export`` = ``ocs export`` (same options)."""

from ocs.cli.export_cmd import main

main()
