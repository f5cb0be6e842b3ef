"""mypy --strict over the core and every plugin's sources (tox's `type` env)."""

import glob
import subprocess
import sys

paths = ["src", *sorted(glob.glob("plugins/*/src"))]
sys.exit(subprocess.call([sys.executable, "-m", "mypy", "--strict", *paths]))
