"""`python -m topics_assets.cli`: the same command as `topics` (the tests start it in subprocesses this way)."""

from . import main

main()
