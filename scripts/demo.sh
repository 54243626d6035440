#!/usr/bin/env bash
# Fresh machine -> anomaly layer: set up .venv, run RX on the sample scene, write the GeoTIFF and the
# detection polygons to out/, print the AUC against the sample's ground truth.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$REPO/scripts/setup.sh"
mkdir -p "$REPO/out"
"$REPO/.venv/bin/hadcore" detect "${1:-rx}" "$REPO/sample_data/abu-airport-1.tif" \
    -o "$REPO/out/abu-airport-1_${1:-rx}.tif" --vector "$REPO/out/abu-airport-1_${1:-rx}.gpkg" \
    --threshold "${THRESHOLD:-fpr:1e-3}" --overwrite
