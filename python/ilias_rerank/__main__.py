"""``python -m ilias_rerank``: the ``ilias-rerank`` command line."""

from .cli import main

raise SystemExit(main())
