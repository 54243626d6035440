"""Reliability on big inputs (the issue's section of that name), end to end through the CLI.

* a corrupt or truncated data block (header and IFD intact) is one line on stderr naming the file and the
  band, exit 2, and leaves nothing behind;
* ``-o`` / ``--vector`` naming an input (any spelling of it) is refused, ``--overwrite`` or not;
* a run killed with SIGKILL, or failing on a full disk, leaves no output and no stray temporary, and an
  existing output is intact; the next run removes the killed run's temporary;
* the bad inputs a user meets on big scenes: one band, NaN and nodata pixels, a constant band, an unknown
  parameter, a missing file, a memory limit too small for one block.

Real files and real subprocesses wherever the behaviour depends on them (C libraries print on the
process's stderr, SIGKILL, a real full filesystem: a 1 MiB tmpfs, mounted when running as root). Every
test needs the CLI extras; they are imported lazily so that the core-only run (-m "not cli") can collect
this module.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import load_scene

pytestmark = pytest.mark.cli

TMP_MARK = ".hadcore-"


# ------------------------------------------------------------------------------------------------ helpers
def _exe():
    exe = Path(sys.executable).with_name("hadcore")  # the console script installed beside this interpreter
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "hadcore_cli.main"]


def hadcore(*args, cwd=None, timeout=300):
    """The installed ``hadcore`` in a subprocess (sees what C libraries print on fd 2, and exit codes)."""
    return subprocess.run(_exe() + [str(a) for a in args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def invoke(*args):
    """The CLI in process (fast): for cases decided before any C library runs."""
    from click.testing import CliRunner

    from hadcore_cli.main import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _code(r):
    return r.returncode if hasattr(r, "returncode") else r.exit_code


def assert_user_error(r, *needles):
    """Exit 2, exactly one line on stderr (``hadcore: error: ...``) containing every needle, no traceback."""
    out = (r.stdout or "") + (r.stderr or "")
    assert _code(r) == 2, out
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{r.stderr}"
    line = lines[0]
    assert line.startswith("hadcore: error: "), line
    assert "Traceback" not in out, out
    for n in needles:
        assert n.lower() in line.lower(), f"{n!r} not in {line!r}"
    return line


def temporaries(folder):
    return sorted(p.name for p in Path(folder).iterdir() if TMP_MARK in p.name)


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _quiet_rasterio():
    import rasterio

    warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
    return rasterio


def tiff_block(path, band, row, col):
    """(offset, size) in bytes of the data block (row, col) of ``band``, from GDAL's TIFF metadata domain."""
    rasterio = _quiet_rasterio()
    with rasterio.open(path) as src:
        off = src.get_tag_item(f"BLOCK_OFFSET_{col}_{row}", "TIFF", bidx=band)
        size = src.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=band)
    return int(off), int(size)


def ifd_offset(path):
    rasterio = _quiet_rasterio()
    with rasterio.open(path) as src:
        return int(src.get_tag_item("IFD_OFFSET", "TIFF", bidx=1))


# ------------------------------------------------------------------------------------------------ scenes
@pytest.fixture(scope="module")
def cube100():
    """abu-airport-1, 100 x 100, 30 of its bands."""
    cube, _ = load_scene("abu-airport-1")
    return np.ascontiguousarray(cube[:, :, ::7][:, :, :30])


@pytest.fixture(scope="module")
def geotiffs(tmp_path_factory, cube100):
    """The scene as written by ``write_cube`` (band-interleaved, deflate, 96 x 96 tiles, IFD at the end) and
    as band- and pixel-interleaved deflate GeoTIFFs with 32 x 32 tiles and the IFD first (GDAL CreateCopy)."""
    _quiet_rasterio()
    from rasterio.shutil import copy

    from hadcore.io import write_cube

    d = tmp_path_factory.mktemp("tiffs")
    base = write_cube(d / "scene.tif", cube100)
    out = {"write_cube": base}
    for il in ("band", "pixel"):
        p = d / f"scene_{il}.tif"
        copy(base, p, driver="GTiff", compress="deflate", predictor=3, tiled=True, blockxsize=32, blockysize=32,
             interleave=il)
        out[il] = p
    return out


@pytest.fixture(scope="module")
def big_npz(tmp_path_factory):
    """A 1000 x 1000 x 6 noise scene (24 MB): its float32 score layer (~3.5 MB even compressed) does not fit
    in 1 MiB."""
    p = tmp_path_factory.mktemp("big") / "big.npz"
    rng = np.random.default_rng(0)
    np.savez(p, cube=rng.normal(100.0, 10.0, (1000, 1000, 6)).astype(np.float32))
    return p


@pytest.fixture(scope="module")
def slow_tif(tmp_path_factory):
    """A 60 x 60 x 52 crop: lrx takes a few seconds on it (long enough to be killed while it writes)."""
    from hadcore.io import write_cube

    cube, _ = load_scene("abu-airport-1")
    return write_cube(tmp_path_factory.mktemp("slow") / "slow.tif", cube[:60, :60, ::4])


# ================================================================================ 1. corrupt / truncated data
BAND = 5  # the band whose data block gets damaged


def _damage(src, dst, how, layout):
    """Copy ``src`` to ``dst`` and damage the data block (1, 1) of band BAND, keeping the header and IFD."""
    shutil.copyfile(src, dst)
    row, col = (0, 0) if layout == "write_cube" else (1, 1)
    off, size = tiff_block(dst, BAND, row, col)
    ifd = ifd_offset(dst)
    if how == "overwrite":
        # zeros over the start of the block: its zlib header and first deflate bytes
        n = min(64, size // 2)
        assert not (off <= ifd < off + n)
        with open(dst, "r+b") as fh:
            fh.seek(off)
            fh.write(bytes(n))
    else:
        cut = off + size // 2  # in the middle of that block
        assert ifd < cut, "the IFD must lie before the cut (header intact)"
        os.truncate(dst, cut)
        assert os.path.getsize(dst) < os.path.getsize(src)
    rasterio = _quiet_rasterio()
    with rasterio.open(dst) as a, rasterio.open(src) as b:  # the header still opens, as before
        assert (a.count, a.height, a.width, a.block_shapes) == (b.count, b.height, b.width, b.block_shapes)


@pytest.mark.parametrize("layout,how", [("band", "overwrite"), ("pixel", "overwrite"), ("write_cube", "overwrite"),
                                        ("band", "truncate"), ("pixel", "truncate")])
def test_corrupt_or_truncated_block_is_one_line_naming_file_and_band(tmp_path, geotiffs, layout, how):
    bad = tmp_path / f"bad_{layout}_{how}.tif"
    _damage(geotiffs[layout], bad, how, layout)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "rx.tif"
    r = hadcore("detect", "rx", bad, "-o", out, "-q")
    line = assert_user_error(r, bad.name)
    # pixel-interleaved: every band lives in the damaged block, GDAL fails on the first one
    band = BAND if layout != "pixel" else 1
    assert re.search(rf"\bband {band}\b", line), line
    assert "corrupt or truncated" in line, line
    assert not out.exists() and list(out_dir.iterdir()) == []


def test_truncated_envi_data_file_is_an_error_not_zeros(tmp_path, cube100):
    """GDAL's raw drivers read zeros past the end of a truncated data file, without any error."""
    _quiet_rasterio()
    from rasterio.shutil import copy

    from hadcore.io import write_cube

    from affine import Affine

    # georeferenced: a raster without georeference makes open_scene print rasterio's NotGeoreferencedWarning
    src = write_cube(tmp_path / "s.tif", cube100, crs="EPSG:32611", transform=Affine(1, 0, 500000, 0, -1, 4e6))
    for il, band in (("BSQ", 19), ("BIP", 1)):
        img = tmp_path / f"s_{il}.img"
        copy(src, img, driver="ENVI", INTERLEAVE=il)
        os.truncate(img, int(os.path.getsize(img) * 0.6))
        out = tmp_path / f"o_{il}.tif"
        r = hadcore("detect", "rx", img, "-o", out, "-q")
        line = assert_user_error(r, img.name, "truncated")
        assert re.search(rf"\bband {band}\b", line), line
        assert not out.exists() and temporaries(tmp_path) == []


# ================================================================================ 2. output naming an input
@pytest.fixture
def small_tif(tmp_path, cube100, monkeypatch):
    from hadcore.io import write_cube

    monkeypatch.chdir(tmp_path)
    p = write_cube(tmp_path / "a.tif", cube100[:20, :20, :10])
    write_cube(tmp_path / "a_gt.tif", (cube100[:20, :20, 0] > cube100[:, :, 0].mean()).astype(np.uint8))
    os.symlink("a.tif", tmp_path / "link.tif")
    os.link(tmp_path / "a.tif", tmp_path / "hard.tif")
    return p


SPELLINGS = {
    "same": lambda d: "a.tif",
    "dot": lambda d: "./a.tif",
    "absolute": lambda d: str(d / "sub" / ".." / "a.tif"),
    "symlink": lambda d: "link.tif",
    "hardlink": lambda d: "hard.tif",
    "ground truth": lambda d: "a_gt.tif",
}


@pytest.mark.parametrize("overwrite", [False, True], ids=["", "overwrite"])
@pytest.mark.parametrize("option", ["-o", "--vector"])
@pytest.mark.parametrize("spelling", list(SPELLINGS))
def test_output_naming_an_input_is_refused(tmp_path, small_tif, option, spelling, overwrite):
    (tmp_path / "sub").mkdir()
    before = {n: digest(tmp_path / n) for n in ("a.tif", "a_gt.tif")}
    target = SPELLINGS[spelling](tmp_path)
    args = ["detect", "rx", "a.tif", "-q"]
    args += ["-o", target] if option == "-o" else ["-o", "scores.tif", "--vector", target]
    if overwrite:
        args.append("--overwrite")
    r = invoke(*args)
    assert_user_error(r, "refusing to write", "over the input")
    assert {n: digest(tmp_path / n) for n in before} == before
    assert not (tmp_path / "scores.tif").exists() and temporaries(tmp_path) == []


def test_input_named_through_a_symlink_is_protected_too(tmp_path, small_tif):
    before = digest(small_tif)
    assert_user_error(invoke("detect", "rx", "link.tif", "-o", "a.tif", "--overwrite"), "refusing to write")
    assert digest(small_tif) == before


# ================================================================================ 3a. killed mid-write
def _start_and_kill(args, out):
    """Start ``hadcore ARGS``, SIGKILL it once its temporary output file exists beside ``out``."""
    proc = subprocess.Popen(_exe() + [str(a) for a in args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    prefix = f".{out.name}{TMP_MARK}{proc.pid}-"
    deadline = time.monotonic() + 120
    tmp = None
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            tmps = [p for p in out.parent.iterdir() if p.name.startswith(prefix)]
            if tmps and (tmps[0] / out.name).exists():
                tmp = tmps[0]
                break
            time.sleep(0.005)
        assert tmp is not None, f"no temporary appeared (rc={proc.poll()}): {proc.stderr.read()!r}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()  # reaped: its pid no longer exists
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    return tmp


@pytest.mark.parametrize("existing", [False, True], ids=["no-output", "existing-output"])
def test_sigkill_leaves_no_output_and_next_run_removes_the_temporary(tmp_path, slow_tif, existing):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "lrx.tif"
    extra = []
    if existing:
        r = hadcore("detect", "rx", slow_tif, "-o", out, "-q")
        assert r.returncode == 0, r.stderr
        before = digest(out)
        extra = ["--overwrite"]
    tmp = _start_and_kill(["detect", "lrx", slow_tif, "-o", out, "-q", *extra], out)
    assert tmp.exists(), "SIGKILL cannot clean up: the temporary is left"
    if existing:
        assert digest(out) == before  # the previous output is intact
    else:
        assert not out.exists()
    # the next run is not disturbed by it, and removes it
    r = hadcore("detect", "lrx", slow_tif, "-o", out, "-q", *extra)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == ""
    assert temporaries(out_dir) == [] and sorted(p.name for p in out_dir.iterdir()) == ["lrx.tif"]
    from hadcore.io import read_scores

    s, _, tags = read_scores(out)
    assert s.shape == (60, 60) and np.isfinite(s).all() and tags["detector"] == "lrx"


def test_temporaries_of_live_processes_are_kept(tmp_path):
    from hadcore.io import remove_stale_temporaries

    final = tmp_path / "o.tif"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        keep = tmp_path / f".o.tif{TMP_MARK}{live.pid}-abc.tmp"
        gone = tmp_path / f".o.tif{TMP_MARK}{dead.pid}-abc.tmp"
        other = tmp_path / f".other.tif{TMP_MARK}{dead.pid}-abc.tmp"
        for d in (keep, gone, other):
            d.mkdir()
            (d / "o.tif").write_bytes(b"partial")
        remove_stale_temporaries(final)
        assert keep.exists() and other.exists() and not gone.exists()
    finally:
        live.kill()
        live.wait()


# ================================================================================ 3b. full disk
@contextlib.contextmanager
def tmpfs(d: Path, options: str):
    """A tmpfs mounted at ``d`` (needs root); skips only when mounting fails with EPERM."""
    if not sys.platform.startswith("linux"):
        pytest.skip("tmpfs mounts are Linux only")
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    d.mkdir()
    target = str(d).encode()
    if libc.mount(b"tmpfs", target, b"tmpfs", 0, options.encode()) != 0:
        e = ctypes.get_errno()
        if e == errno.EPERM:
            pytest.skip("mounting a tmpfs is not permitted here (EPERM); see the injected ENOSPC test")
        pytest.fail(f"mount -t tmpfs -o {options} failed: {os.strerror(e)}")
    try:
        yield d
    finally:
        if libc.umount2(target, 0) != 0:
            libc.umount2(target, 2)  # MNT_DETACH


@pytest.fixture
def tiny_fs(tmp_path):
    """A 1 MiB filesystem (tmpfs)."""
    with tmpfs(tmp_path / "tiny", "size=1m") as d:
        assert shutil.disk_usage(d).total <= 2**20
        yield d


def _existing_output(path):
    from hadcore.io import write_scores

    write_scores(path, np.random.default_rng(1).random((50, 50)).astype(np.float32), detector="rx")
    return digest(path)


# mem-limit 64: blocks of a third of the scene go through GDAL's block cache and fail when it is flushed at
# close; default: each block is written straight through and fails in write()
@pytest.mark.parametrize("mem", [None, 64], ids=["direct-writes", "cached-writes"])
@pytest.mark.parametrize("existing", [False, True], ids=["no-output", "existing-output"])
def test_full_disk_is_one_line_and_leaves_nothing(tiny_fs, big_npz, existing, mem):
    out = tiny_fs / "rx.tif"
    args = ["detect", "rx", big_npz, "-o", out, "-q"]
    if mem:
        args += ["--mem-limit", mem]
    if existing:
        before = _existing_output(out)
        args.append("--overwrite")
    r = hadcore(*args)
    assert_user_error(r, "no space left", out.name)
    assert temporaries(tiny_fs) == []
    if existing:
        assert digest(out) == before
    else:
        assert not out.exists()
    assert list(p.name for p in tiny_fs.iterdir()) == (["rx.tif"] if existing else [])


@pytest.fixture(scope="module")
def mid_npz(tmp_path_factory):
    """1000 x 200 x 6 noise: its score layer (~680 KB) fits in 1 MiB, not twice."""
    p = tmp_path_factory.mktemp("mid") / "mid.npz"
    np.savez(p, cube=np.random.default_rng(0).normal(100.0, 10.0, (1000, 200, 6)).astype(np.float32))
    return p


def test_full_disk_while_converting_to_cog(tiny_fs, mid_npz):
    out = tiny_fs / "rx.tif"
    r = hadcore("detect", "rx", mid_npz, "-o", out, "-q")
    assert r.returncode == 0 and r.stderr == "", r.stderr  # the plain layer fits
    out.unlink()
    r = hadcore("detect", "rx", mid_npz, "-o", out, "--cog", "-q")  # its COG copy does not
    assert_user_error(r, "no space left", out.name)
    assert list(tiny_fs.iterdir()) == []


def test_no_room_for_the_temporary_folder(tmp_path, geotiffs):
    with tmpfs(tmp_path / "noinodes", "size=1m,nr_inodes=1") as d:  # not even one more inode
        out = d / "rx.tif"
        assert_user_error(hadcore("detect", "rx", geotiffs["band"], "-o", out, "-q"), "no space left", out.name)
        assert list(d.iterdir()) == []


def test_injected_enospc_mid_way_is_one_line_and_leaves_nothing(tmp_path, big_npz, monkeypatch):
    """The same without a real full disk (where mounting is not permitted): the writer fails with ENOSPC at
    its second block."""
    from hadcore.io import ScoreWriter

    out = tmp_path / "rx.tif"
    before = _existing_output(out)
    orig = ScoreWriter.write
    calls = []

    def failing_write(self, r0, c0, scores):
        calls.append(r0)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return orig(self, r0, c0, scores)

    monkeypatch.setattr(ScoreWriter, "write", failing_write)
    r = invoke("detect", "rx", big_npz, "-o", out, "--overwrite", "--mem-limit", 64, "-q")
    assert_user_error(r, "no space left", out.name)
    assert len(calls) == 2
    assert digest(out) == before and temporaries(tmp_path) == []


# ================================================================================ 4. bad inputs
def test_one_band_raster(tmp_path, cube100):
    from hadcore.io import write_cube

    p = write_cube(tmp_path / "one.tif", cube100[:, :, :1])
    assert_user_error(invoke("detect", "rx", p, "-o", tmp_path / "o.tif"), "at least 2 bands", "one.tif")
    assert not (tmp_path / "o.tif").exists()


def test_unknown_parameter_and_missing_file(tmp_path, geotiffs):
    assert_user_error(invoke("detect", "rx", geotiffs["band"], "-o", tmp_path / "o.tif", "-p", "nope=3"),
                      "no parameter 'nope'")
    assert_user_error(invoke("detect", "rx", tmp_path / "missing.tif", "-o", tmp_path / "o.tif"),
                      "input not found", "missing.tif")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name,params", [("rx", []), ("lrx", ["-p", "inner=3", "-p", "outer=9"])])
def test_nan_and_nodata_pixels_are_nodata_in_the_output(tmp_path, cube100, name, params):
    rasterio = _quiet_rasterio()
    import hadcore
    from hadcore.io import write_cube

    nd = -9999.0
    cube = cube100[:40, :40, :20].copy()
    invalid = np.zeros((40, 40), bool)
    cube[0, :, :] = nd  # a row outside the footprint
    cube[10:13, 20:24, :] = nd
    cube[25, 5, 3] = np.nan  # a bad value in one band
    cube[30, 30, :] = np.nan
    invalid[0, :] = invalid[10:13, 20:24] = invalid[25, 5] = invalid[30, 30] = True
    p = write_cube(tmp_path / "holes.tif", cube, nodata=nd)
    out = tmp_path / "o.tif"
    r = invoke("detect", name, p, "-o", out, "-q", *params)
    assert r.exit_code == 0, r.output
    with rasterio.open(out) as dst:
        assert dst.nodata == nd
        raw = dst.read(1)
    assert (raw[invalid] == nd).all()
    assert np.isfinite(raw[~invalid]).all() and (raw[~invalid] != nd).all()
    # the valid pixels score as in memory with those pixels masked out
    clean = np.where(invalid[:, :, None], 0.0, cube).astype(np.float32)
    det = hadcore.get_detector(name, **dict(a.split("=") for a in params[1::2]))
    ref = det.detect(clean, mask=~invalid)
    np.testing.assert_allclose(raw[~invalid], ref[~invalid], rtol=2e-4, atol=1e-4)


@pytest.mark.parametrize("name,params", [("rx", []), ("lrx", ["-p", "inner=3", "-p", "outer=9"])])
def test_constant_band_gives_finite_scores(tmp_path, cube100, name, params):
    from hadcore.io import read_scores, write_cube

    cube = cube100[:40, :40, :20].copy()
    cube[:, :, 3] = 500.0
    cube[:, :, 7] = 0.0
    p = write_cube(tmp_path / "flat.tif", cube)
    out = tmp_path / "o.tif"
    r = invoke("detect", name, p, "-o", out, "-q", *params)
    assert r.exit_code == 0, r.output
    s, _, _ = read_scores(out)
    assert np.isfinite(s).all()


def test_mem_limit_too_small_names_the_smallest_budget_that_works(tmp_path):
    from hadcore.io import read_scores, write_cube

    cube, _ = load_scene("abu-airport-1")
    p = write_cube(tmp_path / "s.tif", cube[:40, :40, ::3][:, :, :60])
    out = tmp_path / "o.tif"
    line = assert_user_error(invoke("detect", "lrx", p, "-o", out, "--mem-limit", 16), "memory limit of 16 MB",
                             "smallest budget that works")
    assert not out.exists() and temporaries(tmp_path) == []
    need = int(re.search(r"smallest budget that works is (\d+) MB", line).group(1))
    assert need > 16
    r = invoke("detect", "lrx", p, "-o", out, "--mem-limit", need, "-q")
    assert r.exit_code == 0, r.output
    s, _, _ = read_scores(out)
    assert s.shape == (40, 40) and np.isfinite(s).all()
