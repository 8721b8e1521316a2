"""The soak is long: it is collected only when asked for, never by ``make test``.

    CARDBOT_SOAK=1 CARDBOT_SOAK_SECONDS=600 .venv/bin/python -m pytest tests/soak -q -s
"""

from __future__ import annotations

import os

collect_ignore_glob = [] if os.environ.get("CARDBOT_SOAK") else ["test_*.py"]
