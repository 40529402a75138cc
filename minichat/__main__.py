"""`python -m minichat ...` is the same as the `minichat` command."""
from minichat.cli import main

raise SystemExit(main())
