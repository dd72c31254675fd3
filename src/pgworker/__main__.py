"""`python -m pgworker`."""

from pgworker.cli import main

main()
