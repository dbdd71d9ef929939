"""``python -m analyzer`` runs the ``tlsa`` command line."""

from analyzer.cli import main

main()
