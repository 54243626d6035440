"""The Dask backend on a real cluster: a scheduler and two workers started as processes on 127.0.0.1.

The CLI runs on them with ``--scheduler`` (and once on a LocalCluster with ``--workers 2``); its outputs are
compared with the in-process engine's, and the scheduler's task stream shows that the workers, not the
client, ran one score task per block. A worker killed mid-run is survived (the run completes, correct), and
when the scheduler gives up on a task (``allowed-failures`` 0) the CLI exits 2 with one line and leaves no
output. The Python API (``hadcore.detect``) is checked on numpy, xarray and dask arrays.

Skipped without dask/distributed locally; on CI (``CI=true``) their absence fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import ON_CI, REPO, load_scene

try:
    import dask.array as da
    import distributed
except ImportError as exc:  # pragma: no cover - depends on the environment
    if ON_CI and os.environ.get("HADCORE_CORE_ONLY") != "1":
        raise ImportError(f"dask and distributed are required on CI: {exc}") from exc
    pytest.skip(f"dask / distributed not installed: {exc}", allow_module_level=True)

import hadcore
from hadcore.base import Context, Detector
from hadcore.engine import MB, ArraySource, plan_blocks, run
from hadcore.io import read_scores, write_cube
from hadcore.scene import open_scene

pytestmark = pytest.mark.cli  # the CLI and rasterio are needed too

TESTS = Path(__file__).resolve().parent
BANDS = 20
LRX = dict(inner=3, outer=9)
LAZY_MEM = {"rx": 2, "lrx": 4}  # MB: a 60 x 70 crop in 6 blocks


# ================================================================================================ scenes
def _mosaic(n: int) -> np.ndarray:
    """n x n flipped copies of abu-airport-1 (100 x 100), first BANDS bands: (100 n, 100 n, BANDS) float32."""
    cube, _ = load_scene("abu-airport-1")
    cube = cube[:, :, :BANDS]
    row = np.concatenate([cube if j % 2 == 0 else cube[:, ::-1] for j in range(n)], axis=1)
    return np.ascontiguousarray(np.concatenate([row if i % 2 == 0 else row[::-1] for i in range(n)], axis=0))


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """big.tif (400 x 400) for RX, small.tif (200 x 200) for LRX, and their in-process scores."""
    d = tmp_path_factory.mktemp("dask-scenes")
    out = {"big": d / "big.tif", "small": d / "small.tif"}
    write_cube(out["big"], _mosaic(4))
    write_cube(out["small"], _mosaic(2))
    for name, path in (("rx", out["big"]), ("lrx", out["small"])):
        det = _det(name)
        mem = out[f"{name}_mem"] = _mem_for_blocks(det, path, 3)
        out[f"{name}_ref"] = run(det, open_scene(path).source, mem_limit_mb=mem)[0].array
    return out


def _det(name):
    return hadcore.get_detector(name, **({} if name == "rx" else LRX))


def _plan(det, path, mem_mb):
    src = open_scene(path).source
    ctx = det.context()
    return plan_blocks(det, src.shape, int(mem_mb * MB), block_shape=src.block_shape,
                       needs_stats=bool(ctx.global_stats or ctx.sample))


def _mem_for_blocks(det, path, n: int) -> int:
    """The largest --mem-limit (MB, per worker) that cuts the scene into at least ``n`` score blocks."""
    for mem in (96, 80, 64, 56, 48, 40, 32, 24, 16):
        if _plan(det, path, mem).n_blocks >= n:
            return mem
    raise AssertionError(f"no budget makes {n} blocks of {path.name} for {det.name}")


# ================================================================================================ cluster
class Cluster:
    """A ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1, and a monitoring client."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.procs = []
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS), str(REPO),
                                                                            os.environ.get("PYTHONPATH")])))
        sched_file = tmp / "scheduler.json"
        self._spawn("scheduler", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                    "--no-dashboard", "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(sched_file),
                    "--idle-timeout", "900")
        deadline = time.time() + 60
        while not sched_file.exists() or not sched_file.read_text().strip():
            if time.time() > deadline or self.procs[0].poll() is not None:
                raise RuntimeError(f"the scheduler did not start: {(tmp / 'scheduler.log').read_text()[-2000:]}")
            time.sleep(0.1)
        time.sleep(0.2)  # the file is written in one go, but give it a moment
        import json

        self.address = json.loads(sched_file.read_text())["address"]
        assert self.address.startswith("tcp://127.0.0.1:")
        self.client = distributed.Client(self.address, timeout="30s", set_as_default=False)
        self.client.get_task_stream(count=1)  # installs the task-stream plugin on the scheduler
        self.n_started = 0

    def _spawn(self, name, module, *args):
        log = open(self.tmp / f"{name}.log", "w")
        p = subprocess.Popen([sys.executable, "-m", module, *args], stdout=log, stderr=subprocess.STDOUT,
                             env=self.env, cwd=self.tmp)
        log.close()
        self.procs.append(p)
        return p

    def workers(self) -> dict:
        """address -> {name, pid, ...} of the registered workers."""
        return dict(self.client.scheduler_info(n_workers=-1)["workers"])

    def ensure(self, n: int) -> dict:
        """Start workers until ``n`` are registered; returns workers()."""
        missing = n - len(self.workers())
        for _ in range(max(missing, 0)):
            name = f"w{self.n_started}"
            self.n_started += 1
            self._spawn(name, "distributed.cli.dask_worker", self.address, "--nthreads", "1", "--no-nanny",
                        "--no-dashboard", "--dashboard-address", "127.0.0.1:0", "--host", "127.0.0.1",
                        "--name", name, "--memory-limit", "2GiB",
                        "--local-directory", str(self.tmp), "--death-timeout", "60")
        self.client.wait_for_workers(n, timeout=90)
        return self.workers()

    def kill(self, address: str) -> None:
        """SIGKILL the worker process at ``address`` (one we started)."""
        pid = int(self.client.run(os.getpid, workers=[address])[address])
        ours = {p.pid: p for p in self.procs}
        assert pid in ours, f"worker {address} (pid {pid}) was not started by this test"
        os.kill(pid, signal.SIGKILL)
        ours[pid].wait(timeout=30)

    def processing(self, prefix: str) -> dict:
        """address -> keys (starting with ``prefix``) being processed there now."""
        return self.client.run_on_scheduler(
            lambda dask_scheduler: {ws.address: [str(ts.key) for ts in ws.processing if str(ts.key).startswith(prefix)]
                                    for ws in dask_scheduler.workers.values()})

    def hadcore_keys(self) -> list:
        return self.client.run_on_scheduler(
            lambda dask_scheduler: [str(k) for k in dask_scheduler.tasks if "hadcore" in str(k)])

    def set_allowed_failures(self, n: int) -> None:
        self.client.run_on_scheduler(lambda dask_scheduler: setattr(dask_scheduler, "allowed_failures", n))

    def stream(self) -> list:
        return [r for r in self.client.get_task_stream() if "hadcore" in str(r.get("key"))]

    def close(self):
        try:
            self.client.close(timeout=10)
        except Exception:
            pass
        for p in reversed(self.procs):  # workers first, the scheduler last
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=15)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("dask-cluster"))
    try:
        c.ensure(2)
        yield c
    finally:
        c.close()


def _cli(*args):
    from click.testing import CliRunner

    from hadcore_cli.main import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _key_prefix(key) -> str:
    from dask.utils import key_split

    return key_split(key)


# ================================================================================================ CLI on a cluster
@pytest.mark.parametrize("name", ["rx", "lrx"])
def test_cli_on_a_scheduler_runs_blocks_on_the_workers_and_matches_in_process(cluster, scenes, tmp_path, name):
    workers = cluster.ensure(2)
    path = scenes["big"] if name == "rx" else scenes["small"]
    mem, ref = scenes[f"{name}_mem"], scenes[f"{name}_ref"]
    params = [] if name == "rx" else ["-p", f"inner={LRX['inner']}", "-p", f"outer={LRX['outer']}"]
    plan = _plan(_det(name), path, mem)
    before = {r["key"] for r in cluster.stream()}
    out = tmp_path / f"{name}.tif"
    r = _cli("detect", name, path, "-o", out, *params, "--mem-limit", mem, "--scheduler", cluster.address, "-q")
    assert r.exit_code == 0, r.output
    scores, _, tags = read_scores(out)
    assert tags["detector"] == name
    np.testing.assert_array_equal(np.isnan(scores), np.isnan(ref))
    np.testing.assert_allclose(scores, ref, rtol=1e-5, equal_nan=True)

    done = [rec for rec in cluster.stream() if rec["key"] not in before and rec.get("status", "OK") == "OK"]
    by_worker = Counter(rec["worker"] for rec in done if _key_prefix(rec["key"]) == "hadcore-score")
    assert sum(by_worker.values()) == plan.n_blocks, by_worker
    assert set(by_worker) == set(workers), f"score tasks per worker: {dict(by_worker)}; workers: {set(workers)}"
    if name == "rx":  # the statistics ran as block tasks and a tree of merges, on the workers too
        prefixes = Counter(_key_prefix(rec["key"]) for rec in done)
        assert prefixes["hadcore-stats"] == len(plan.stat_windows) >= 2, prefixes
        assert prefixes["hadcore-stats-merge"] == len(plan.stat_windows) - 1, prefixes
        assert {rec["worker"] for rec in done} <= set(workers)


def test_cli_local_cluster_of_two_workers(scenes, tmp_path):
    out = tmp_path / "rx.tif"
    r = _cli("detect", "rx", scenes["big"], "-o", out, "--mem-limit", scenes["rx_mem"], "--workers", 2, "-q")
    assert r.exit_code == 0, r.output
    np.testing.assert_allclose(read_scores(out)[0], scenes["rx_ref"], rtol=1e-5, equal_nan=True)


# ================================================================================================ failures
def _run_cli_and_kill_a_worker(cluster, scenes, out: Path):
    """The CLI (a process) runs LRX on the cluster; the first worker seen scoring a block is killed."""
    cluster.ensure(2)
    args = [sys.executable, "-m", "hadcore_cli.main", "detect", "lrx", str(scenes["small"]), "-o", str(out),
            "-p", f"inner={LRX['inner']}", "-p", f"outer={LRX['outer']}", "--mem-limit", str(scenes["lrx_mem"]),
            "--scheduler", cluster.address, "-q"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=out.parent)
    try:
        deadline = time.time() + 90
        victim = None
        while victim is None:
            assert proc.poll() is None, f"the run ended before a worker could be killed: {proc.communicate()}"
            assert time.time() < deadline, "no score task started"
            busy = [a for a, keys in cluster.processing("hadcore-score").items() if keys]
            victim = busy[0] if busy else None
            if victim is None:
                time.sleep(0.02)
        cluster.kill(victim)
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, stdout, stderr


def _no_partial_output(out: Path):
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.hadcore-")], \
        list(out.parent.iterdir())


def test_a_worker_killed_mid_run_is_survived(cluster, scenes, tmp_path):
    """Dask reschedules the lost worker's blocks on the other: the run completes with the right scores (or, at
    worst, exits 2 with one line and no output; never a traceback)."""
    out = tmp_path / "lrx.tif"
    code, stdout, stderr = _run_cli_and_kill_a_worker(cluster, scenes, out)
    assert "Traceback" not in stderr
    if code == 0:
        np.testing.assert_allclose(read_scores(out)[0], scenes["lrx_ref"], rtol=1e-5, equal_nan=True)
    else:
        assert code == 2 and len(stderr.strip().splitlines()) == 1, stderr
        _no_partial_output(out)
    assert code == 0, f"the run did not survive the loss of one worker: {stderr}"


def test_a_task_the_scheduler_gives_up_on_exits_2_with_one_line_and_no_output(cluster, scenes, tmp_path):
    out = tmp_path / "lrx.tif"
    cluster.set_allowed_failures(0)  # the first worker death running a task fails it: KilledWorker
    try:
        code, stdout, stderr = _run_cli_and_kill_a_worker(cluster, scenes, out)
    finally:
        cluster.set_allowed_failures(3)
    lines = stderr.strip().splitlines()
    assert code == 2, stderr
    assert len(lines) == 1 and lines[0].startswith("hadcore: error: Dask:") and "died" in lines[0], stderr
    assert "Traceback" not in stderr
    _no_partial_output(out)
    deadline = time.time() + 30  # the run's remaining tasks were cancelled
    while cluster.hadcore_keys() and time.time() < deadline:
        time.sleep(0.2)
    assert not cluster.hadcore_keys()


def test_a_worker_that_cannot_read_the_input_is_one_user_error(cluster, tmp_path):
    from hadcore.distributed import run_distributed
    from hadcore.io import RasterSource

    cluster.ensure(1)
    src = RasterSource(tmp_path / "only-on-the-client.tif", [1, 2, 3], None, (40, 40))
    with pytest.raises(hadcore.FileError, match="cannot read .*only-on-the-client.tif"):
        run_distributed(hadcore.get_detector("rx"), src, client=cluster.client, mem_limit_mb=64, retries=0)


def test_cancelling_stops_the_remaining_blocks(cluster, scenes):
    from hadcore.distributed import run_distributed

    cluster.ensure(2)
    flag = []
    prog = hadcore.Progress(lambda f, m: flag.append(f) if f > 0 else None, is_cancelled=lambda: bool(flag))
    with pytest.raises(hadcore.Cancelled):
        run_distributed(hadcore.get_detector("lrx", **LRX), open_scene(scenes["small"]).source,
                        client=cluster.client, mem_limit_mb=scenes["lrx_mem"], progress=prog)
    deadline = time.time() + 30
    while cluster.hadcore_keys() and time.time() < deadline:
        time.sleep(0.2)
    assert not cluster.hadcore_keys()


# ================================================================================================ blending
class Tiles(Detector):
    """A whole-scene detector on 48-pixel scene tiles overlapping by 6 (importable by the workers: the test
    folder is on their PYTHONPATH)."""

    name = "tiles-test"

    def context(self):
        return Context(whole_scene=True, tile=48, halo=6)

    def _detect(self, cube, mask, progress):
        mu = cube[mask].mean(axis=0)
        return ((cube - mu) ** 2).sum(axis=2)  # depends on the tile: the blend shows


def test_blended_tiles_on_the_cluster_and_lazily_equal_the_engine(cluster, scenes):
    from hadcore.distributed import run_distributed

    cluster.ensure(2)
    cube = _mosaic(2)[:150, :170]
    ref, info = run(Tiles(), ArraySource(cube), mem_limit_mb=64)
    assert info.plan.blend and info.plan.n_blocks >= 9
    out, _ = run_distributed(Tiles(), ArraySource(cube), client=cluster.client, mem_limit_mb=64)
    np.testing.assert_allclose(out.array, ref.array, rtol=1e-6, equal_nan=True)
    lazy = hadcore.detect(Tiles(), da.from_array(cube, chunks=(64, 64, 7)), mem_limit_mb=64)
    np.testing.assert_array_equal(lazy.compute(scheduler="threads"), ref.array)


# ================================================================================================ Python API
@pytest.fixture(scope="module")
def crop():
    return _mosaic(1)[:60, :70]


@pytest.mark.parametrize("name", ["rx", "lrx"])
def test_detect_numpy_in_numpy_out(crop, name):
    params = {} if name == "rx" else LRX
    ref = hadcore.get_detector(name, **params).detect(crop)
    out = hadcore.detect(name, crop, **params)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_array_equal(out, ref)


def test_detect_xarray_keeps_coordinates_and_attributes(crop):
    from conftest import require

    xr = require("xarray")
    H, W, B = crop.shape
    ref = hadcore.get_detector("rx").detect(crop)
    coords = {"band": np.arange(1, B + 1), "y": 5000.0 - 30.0 * np.arange(H), "x": 300000.0 + 30.0 * np.arange(W),
              "spatial_ref": 0}
    arr = xr.DataArray(np.moveaxis(crop, -1, 0), dims=("band", "y", "x"), coords=coords,
                       attrs={"sensor": "AVIRIS", "scale_factor": 1.0})
    for a in (arr, arr.transpose("y", "x", "band")):
        out = hadcore.detect("rx", a)
        assert isinstance(out, xr.DataArray) and out.dims == ("y", "x")
        np.testing.assert_array_equal(out["y"].values, coords["y"])
        np.testing.assert_array_equal(out["x"].values, coords["x"])
        assert "spatial_ref" in out.coords and "band" not in out.coords
        assert out.attrs["sensor"] == "AVIRIS" and "scale_factor" not in out.attrs
        np.testing.assert_allclose(out.values, ref, rtol=1e-5, equal_nan=True)
    lazy = hadcore.detect("rx", arr.chunk({"y": 25}))  # dask-backed: a lazy DataArray
    assert isinstance(lazy.data, da.Array)
    np.testing.assert_allclose(lazy.values, ref, rtol=1e-5, equal_nan=True)


class _CountingArray:
    """A numpy array that counts the reads dask makes of it."""

    def __init__(self, a):
        self.a, self.reads = a, 0
        self.shape, self.dtype, self.ndim = a.shape, a.dtype, a.ndim

    def __getitem__(self, key):
        self.reads += 1
        return self.a[key]


@pytest.mark.parametrize("name", ["rx", "lrx"])
def test_detect_dask_array_is_lazy_and_equal(crop, name):
    params = {} if name == "rx" else LRX
    ref = hadcore.get_detector(name, **params).detect(crop)
    src = _CountingArray(crop)
    mask = np.ones(crop.shape[:2], bool)
    mask[10:14, 20:30] = False
    arr = da.from_array(src, chunks=(16, 16, 7))
    reads = src.reads
    lazy = hadcore.detect(name, arr, mem_limit_mb=LAZY_MEM[name], **params)
    assert isinstance(lazy, da.Array) and lazy.shape == crop.shape[:2] and lazy.dtype == np.float32
    assert len(lazy.chunks[0]) * len(lazy.chunks[1]) > 1  # blocks with halos: map_overlap
    if name == "lrx":  # no statistics to fit: nothing is read before compute()
        assert src.reads == reads, "the scores must not be computed before compute()"
    reads = src.reads
    out = lazy.compute(scheduler="threads")
    assert src.reads > reads
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
    np.testing.assert_allclose(out, ref, rtol=1e-5, equal_nan=True)
    masked = hadcore.detect(name, da.from_array(crop, chunks=(32, 32, -1)), mask=mask, **params).compute()
    np.testing.assert_allclose(masked, hadcore.get_detector(name, **params).detect(crop, mask), rtol=1e-5,
                               equal_nan=True)


def test_detect_with_a_client_runs_on_the_workers(cluster, scenes):
    workers = cluster.ensure(2)
    before = {r["key"] for r in cluster.stream()}
    out = hadcore.detect("rx", str(scenes["big"]), client=cluster.client, mem_limit_mb=scenes["rx_mem"])
    np.testing.assert_allclose(out, scenes["rx_ref"], rtol=1e-5, equal_nan=True)
    cube = _mosaic(1)[:60, :70]
    for name, params in (("rx", {}), ("lrx", LRX)):  # a dask array: statistics and scores on the cluster
        lazy = hadcore.detect(name, da.from_array(cube, chunks=(16, 16, 7)), client=cluster.client,
                              mem_limit_mb=LAZY_MEM[name], **params)
        np.testing.assert_allclose(cluster.client.compute(lazy).result(),
                                   hadcore.get_detector(name, **params).detect(cube), rtol=1e-5, equal_nan=True)
    done = [rec for rec in cluster.stream() if rec["key"] not in before]
    ran = {rec["worker"] for rec in done if _key_prefix(rec["key"]) == "hadcore-score"}
    assert ran and ran <= set(workers)


def test_target_detector_on_the_cluster_columns_exclude_and_spectra(cluster, scenes, tmp_path):
    """A target from a detection, one background per column, the first pass's detections out of it, and the
    detections' spectra: on the workers as in this process (the spectra read again after a cluster run)."""
    from hadcore.vectorize import read_detection_spectra

    cluster.ensure(2)
    path, mem = scenes["small"], scenes["rx_mem"]
    r = _cli("detect", "rx", path, "-o", tmp_path / "rx.tif", "--vector", tmp_path / "rx.gpkg", "-q")
    assert r.exit_code == 0, r.output
    common = ["-p", f"target={tmp_path / 'rx.gpkg'}:1", "-p", "background=columns", "--exclude", "first-pass",
              "--threshold", "top:20", "--mem-limit", mem]
    r = _cli("detect", "mf", path, "-o", tmp_path / "here.tif", "--vector", tmp_path / "here.gpkg", *common)
    assert r.exit_code == 0, r.output
    r = _cli("detect", "mf", path, "-o", tmp_path / "there.tif", "--vector", tmp_path / "there.gpkg", *common,
             "--scheduler", cluster.address)
    assert r.exit_code == 0 and "read again for the background" in r.output, r.output
    here, there = read_scores(tmp_path / "here.tif")[0], read_scores(tmp_path / "there.tif")[0]
    np.testing.assert_allclose(there, here, rtol=1e-5, atol=1e-6, equal_nan=True)
    a, b = read_detection_spectra(tmp_path / "here.gpkg"), read_detection_spectra(tmp_path / "there.gpkg")
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_allclose(b.mean, a.mean, rtol=1e-10)
    np.testing.assert_allclose(b.background_mean, a.background_mean, rtol=1e-10)
