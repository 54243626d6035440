#!/usr/bin/env bash
# Fresh machine -> anomaly layer: set up .venv, run the default detector (auto) on the sample scene, write the
# GeoTIFF and the detection polygons to out/, print the AUC against the sample's ground truth.
#   bash scripts/demo.sh          # auto, the recommended default
#   bash scripts/demo.sh rx       # any registry detector by name
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$REPO/scripts/setup.sh"
mkdir -p "$REPO/out"
NAME="${1:-auto}"
# fpr: thresholds need chi-square scores (rx); the others take the top 0.5 % of the scene
if [ "$NAME" = "rx" ]; then DEFAULT_T="fpr:1e-3"; else DEFAULT_T="percentile:99.5"; fi
"$REPO/.venv/bin/hadcore" detect "$NAME" "$REPO/sample_data/abu-airport-1.tif" \
    -o "$REPO/out/abu-airport-1_$NAME.tif" --vector "$REPO/out/abu-airport-1_$NAME.gpkg" \
    --threshold "${THRESHOLD:-$DEFAULT_T}" --overwrite
