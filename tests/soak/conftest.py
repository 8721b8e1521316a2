"""The soak is long: it is collected only when asked for, never by ``make test``.

CARDBOT_SOAK=1 CARDBOT_SOAK_SECONDS=600 .venv/bin/python -m pytest tests/soak -q -s
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.reliability import TcpProxy

collect_ignore_glob = [] if os.environ.get("CARDBOT_SOAK") else ["test_*.py"]


@pytest.fixture
def breakable() -> Iterator[list[TcpProxy]]:
    """Proxies that outlive the app (requested before ``make_live``), so its teardown can still clean up."""
    made: list[TcpProxy] = []
    yield made
    for p in made:
        p.close()
