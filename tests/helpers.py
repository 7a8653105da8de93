"Shared test helpers: where the offline copies live, and small fixtures in real on-disk formats."
import gzip
import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LATENTGEN_SHARED_DATA", ROOT.parent / "shared" / "data"))


def write_idx(path, arr):
    "Write a uint8 array as an IDX file (gzipped if the name ends in .gz)."
    hdr = bytes([0, 0, 0x08, arr.ndim]) + np.array(arr.shape, dtype=">i4").tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(hdr + arr.astype(np.uint8).tobytes())
