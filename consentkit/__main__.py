"""``python -m consentkit``: the command-line interface."""

from .cli import main

main()
