"Shared test helpers: where the offline copies live."
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LATENTGEN_SHARED_DATA", ROOT.parent / "shared" / "data"))
