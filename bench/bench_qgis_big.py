"""A 1000 x 1000 x 224 layer through QGIS's Processing (the path the algorithm dialog runs), under MEM_LIMIT.

Runs itself inside Debian's QGIS (``.venv-qgis``) as a child process under ``/usr/bin/time`` and reports wall
time, peak RSS and the number of blocks; the scene is the EnMAP-size tile of ``bench/bench_scale.py enmap``.

    .venv-qgis/bin/python bench/bench_qgis_big.py [--path /work/bench_data/enmap_1000x1000x224.tif]
        [--detector rx] [--mem-limit 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child(a):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.path.append("/usr/share/qgis/python/plugins")
    sys.path.insert(0, str(REPO / "qgis_plugin"))
    from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingFeedback, QgsRasterLayer

    app = QgsApplication([], False)
    app.initQgis()
    from processing.core.Processing import Processing

    Processing.initialize()
    import processing
    from hadcore_qgis.provider import HadcoreProvider

    provider = HadcoreProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    layer = QgsRasterLayer(a.path, "scene")
    assert layer.isValid(), a.path
    steps = []

    class Feedback(QgsProcessingFeedback):
        def pushInfo(self, info):
            steps.append(info)

    fb = Feedback()
    fb.progressChanged.connect(lambda p: None)
    t0 = time.perf_counter()
    res = processing.run(f"hadcore:{a.detector}", {"INPUT": layer, "OUTPUT": a.out, "MEM_LIMIT": a.mem_limit},
                         context=QgsProcessingContext(), feedback=fb)
    wall = time.perf_counter() - t0
    print(json.dumps({"wall_s": round(wall, 2), "output": res["OUTPUT"], "log": steps[-2:]}))
    app.exitQgis()


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--path", default="/work/bench_data/enmap_1000x1000x224.tif")
    ap.add_argument("--detector", default="rx")
    ap.add_argument("--mem-limit", type=int, default=1024)
    ap.add_argument("--out", default=None)
    ap.add_argument("--child", action="store_true")
    a = ap.parse_args(argv)
    if a.child:
        return child(a)
    with tempfile.TemporaryDirectory() as tmp:
        a.out = a.out or str(Path(tmp) / "scores.tif")
        tf = Path(tmp) / "time"
        cmd = ["/usr/bin/time", "-f", "%e %M", "-o", str(tf), sys.executable, __file__, "--child", "--path", a.path,
               "--detector", a.detector, "--mem-limit", str(a.mem_limit), "--out", a.out]
        load = os.getloadavg()
        r = subprocess.run(cmd, capture_output=True, text=True)
        wall, rss = tf.read_text().split()[-2:]
        print(r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-2000:])
        print(f"detector={a.detector} mem_limit_mb={a.mem_limit} process_wall_s={wall} peak_rss_mb="
              f"{int(rss) / 1024:.0f} rc={r.returncode} load_before={' '.join(f'{x:.2f}' for x in load)}")


if __name__ == "__main__":
    main()
