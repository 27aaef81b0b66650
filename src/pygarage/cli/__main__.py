"""`python -m pygarage.cli` runs the `garage` command."""

from pygarage.cli.main import main

main()
