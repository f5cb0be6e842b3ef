import sys
from pathlib import Path

# Lets the dashboard tests import their helper module (dashboard_support) under
# --import-mode=importlib.
sys.path.insert(0, str(Path(__file__).parent))
