"""mypy --strict over the core, every plugin's sources and the example plugin (tox's `type` env)."""

import glob
import subprocess
import sys

paths = ["src", *sorted(glob.glob("plugins/*/src")), "examples/plugin-example/src"]
sys.exit(subprocess.call([sys.executable, "-m", "mypy", "--strict", *paths]))
