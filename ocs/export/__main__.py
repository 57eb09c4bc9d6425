"""``python -m ocs.export`` = ``ocs export`` (for environments without the script)."""

from ocs.cli.export_cmd import main

main()
