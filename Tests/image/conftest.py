"""The image tests (`make image-test`) reuse the integration suite's helpers and mock upstream."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
