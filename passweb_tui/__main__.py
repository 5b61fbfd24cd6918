"""`python -m passweb_tui` is the same as the `passweb-tui` command."""

from passweb_tui.cli import main

raise SystemExit(main())
