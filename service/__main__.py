"""``python -m service`` is ``tradewire``."""

from service.cli import main

raise SystemExit(main())
