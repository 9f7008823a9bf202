"""``python -m dspot`` is the ``dspot`` command."""

from dspot.cli import main

raise SystemExit(main())
