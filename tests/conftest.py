import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support.postgres import PostgresServer, find_bindir


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session, started on first use only.

    Without the server binaries the PostgreSQL tests are skipped locally and
    fail on CI (``scripts/install-peers.sh`` installs them there).
    """
    bindir = find_bindir()
    if bindir is None:
        message = "PostgreSQL server binaries not found (scripts/install-peers.sh installs them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = PostgresServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a fresh, empty database on the session's server."""
    return postgres_server.new_database()
