"""Build sample_data/ from the shared benchmark scene abu-airport-1 (run once; the output is committed).

The source scene carries no georeference. We assign one so that the sample exercises the georeferenced
path end to end: WGS 84 / UTM zone 11N (EPSG:32611), 7.1 m pixels (the AVIRIS ground sampling of the ABU
airport scenes), upper-left corner at (370000 E, 3758000 N). The placement is illustrative, not the true
footprint. Nodata is set to 0: no pixel of the scene has all bands at 0, so no real pixel is masked.
"""

import sys
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from hadcore.io import write_cube

REPO = Path(__file__).resolve().parents[1]
SRC = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "data" / "abu-airport-1.npz"
OUT = REPO / "sample_data"

CRS_ = CRS.from_epsg(32611)
TRANSFORM = Affine(7.1, 0.0, 370000.0, 0.0, -7.1, 3758000.0)


def main():
    with np.load(SRC) as z:
        cube, gt = z["cube"], z["gt"]
    assert np.array_equal(cube, np.round(cube)) and cube.min() >= 0 and cube.max() < 65536
    write_cube(OUT / "abu-airport-1.tif", cube.astype(np.uint16), crs=CRS_, transform=TRANSFORM, nodata=0,
               band_names=[f"band {i + 1}" for i in range(cube.shape[2])], overwrite=True,
               tags={"source": "ABU airport-1 (Kang et al., IEEE TGRS 2017); see sample_data/README.md"})
    write_cube(OUT / "abu-airport-1_gt.tif", gt.astype(np.uint8), crs=CRS_, transform=TRANSFORM,
               band_names=["anomaly (1) / background (0)"], overwrite=True)
    print("wrote", OUT / "abu-airport-1.tif", OUT / "abu-airport-1_gt.tif")


if __name__ == "__main__":
    main()
