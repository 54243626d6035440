"""EnMAP L1B / L2A reader (hadcore.products.enmap) on small products written by product_fixtures.enmap."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from conftest import load_scene, require

require("rasterio")

import rasterio  # noqa: E402

from hadcore import get_detector  # noqa: E402
from hadcore.engine import Source, run  # noqa: E402
from hadcore.errors import FileError, InputError  # noqa: E402
from hadcore.products.enmap import READER  # noqa: E402
from product_fixtures.enmap import N_SWIR, N_VNIR, build_enmap, spectral_images  # noqa: E402

SCENE = "abu-airport-2"


@pytest.fixture(scope="module")
def scene():
    return load_scene(SCENE)


@pytest.fixture(scope="module")
def l2a(scene, tmp_path_factory):
    cube, gt = scene
    return build_enmap(tmp_path_factory.mktemp("enmap_l2a"), cube, gt, level="L2A")


@pytest.fixture(scope="module")
def l1b(scene, tmp_path_factory):
    cube, gt = scene
    return build_enmap(tmp_path_factory.mktemp("enmap_l1b"), cube, gt, level="L1B")


@pytest.fixture(scope="module")
def l2a_envi(scene, tmp_path_factory):
    cube, _ = scene
    return build_enmap(tmp_path_factory.mktemp("enmap_envi"), cube[:40, :50], level="L2A", fmt="ENVI",
                       interleave="BSQ")


def copy_product(f, dest: Path) -> Path:
    """Copies of the product's XML and images in ``dest``; returns the new XML path."""
    dest.mkdir(parents=True, exist_ok=True)
    for p in [f.xml] + list(f.images):
        shutil.copy(p, dest / p.name)
    hdrs = [p.with_suffix(".hdr") for p in f.images if p.with_suffix(".hdr").exists()]
    for h in hdrs:
        shutil.copy(h, dest / h.name)
    return dest / f.xml.name


def one_line(exc_info, *names):
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    for n in names:
        assert n in msg, msg
    return msg


# ------------------------------------------------------------------------------------------ sniffing

def test_sniff_claims_xml_and_spectral_images(l2a, l1b, l2a_envi):
    for f in (l2a, l1b, l2a_envi):
        assert READER.sniff(f.xml)
        for img in f.images:
            assert READER.sniff(img), img.name
    assert [p.name for p in l1b.images] == [p.name for p in spectral_images(l1b.xml)]
    assert l1b.images[0].name.endswith("-SPECTRAL_IMAGE_VNIR.TIF")
    assert l1b.images[1].name.endswith("-SPECTRAL_IMAGE_SWIR.TIF")
    assert l2a.images[0].name.endswith("-SPECTRAL_IMAGE.TIF")
    assert l2a_envi.images[0].name.endswith("-SPECTRAL_IMAGE.BSQ")
    assert READER.sniff(l2a_envi.images[0].with_suffix(".hdr"))  # the ENVI header names the product too


def test_sniff_xml_by_content_not_name(l2a, tmp_path):
    renamed = tmp_path / "whatever.xml"
    shutil.copy(l2a.xml, renamed)
    assert READER.sniff(renamed)
    # an XML named like an EnMAP metadata file but with other content is not claimed
    fake = tmp_path / l2a.xml.name
    fake.write_text('<?xml version="1.0"?>\n<PAMDataset><Metadata/></PAMDataset>\n')
    assert not READER.sniff(fake)
    other = tmp_path / "DESIS-HSI-L2A-METADATA.xml"
    other.write_text('<?xml version="1.0"?>\n<hsi_doc><specific><bandCharacterisation><band>'
                     '<wavelengthCenterOfBand>400</wavelengthCenterOfBand></band></bandCharacterisation>'
                     '</specific></hsi_doc>\n')
    assert not READER.sniff(other)
    bare = tmp_path / "bare.xml"  # EnMAP's root element name alone is not enough
    bare.write_text('<?xml version="1.0"?>\n<level_X><metadata><name>OTHER</name></metadata></level_X>\n')
    assert not READER.sniff(bare)
    assert not READER.sniff(tmp_path / "missing-METADATA.XML")
    assert not READER.sniff(tmp_path)


def test_sniff_rejects_plain_geotiff(l2a, tmp_path):
    arr = np.ones((5, 8, 9), dtype=np.int16)
    kw = dict(driver="GTiff", height=8, width=9, count=5, dtype="int16", crs="EPSG:32633",
              transform=rasterio.Affine(30.0, 0.0, 0.0, 0.0, -30.0, 0.0))
    plain = tmp_path / "scene.tif"
    with rasterio.open(plain, "w", **kw) as dst:
        dst.write(arr)
    assert not READER.sniff(plain)
    # EnMAP's image name without a METADATA.XML beside it
    lone = tmp_path / l2a.images[0].name
    shutil.copy(plain, lone)
    assert not READER.sniff(lone)
    # ... and with a METADATA.XML beside it that is not EnMAP's
    (tmp_path / l2a.xml.name).write_text("<root><a/></root>")
    assert not READER.sniff(lone)
    # the ground truth beside a product is not the product
    assert l2a.gt_path is not None and not READER.sniff(l2a.gt_path)


def test_reader_module_imports_only_numpy_and_stdlib():
    code = ("import sys, hadcore.products.enmap as m; bad = [k for k in ('rasterio', 'h5py', 'netCDF4', 'osgeo')"
            " if k in sys.modules]; assert not bad, bad; assert m.READER.name")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


# ------------------------------------------------------------------------------------------ metadata

def test_l2a_metadata(l2a):
    p = READER.open(l2a.xml)
    H, W = l2a.expected.shape[:2]
    assert p.kind == "EnMAP L2A"
    assert p.shape == (H, W, 224)
    assert p.path == str(l2a.xml)
    assert np.all(np.diff(p.wavelengths) > 0)
    np.testing.assert_allclose(p.wavelengths, l2a.wavelengths, atol=1e-9)
    assert 418.0 < p.wavelengths[0] < 419.0 and 2445.0 < p.wavelengths[-1] < 2446.0  # nm, not um
    np.testing.assert_allclose(p.fwhm, l2a.fwhm, atol=1e-9)
    assert np.array_equal(p.good, l2a.good) and (~p.good).sum() == 5
    assert np.all((p.wavelengths[~p.good] > 1340) & (p.wavelengths[~p.good] < 1395))
    assert p.reflective
    assert p.crs is not None and p.crs.to_epsg() == 32633
    assert p.transform == l2a.transform
    assert p.nodata == -32768
    assert p.output is None
    assert p.gt_path == str(l2a.gt_path)
    assert len(p.band_names) == 224 and "VNIR" in p.band_names[0] and "SWIR" in p.band_names[-1]
    # the input may be the SPECTRAL_IMAGE instead of the XML: the same product
    q = READER.open(l2a.images[0])
    assert q.path == p.path and q.shape == p.shape
    np.testing.assert_array_equal(q.wavelengths, p.wavelengths)


def test_l1b_stacks_vnir_and_swir_by_wavelength(l1b):
    p = READER.open(l1b.xml)
    H, W = l1b.expected.shape[:2]
    assert p.kind == "EnMAP L1B"
    assert p.shape == (H, W, N_VNIR + N_SWIR) == (H, W, 224)
    assert np.all(np.diff(p.wavelengths) > 0)
    np.testing.assert_allclose(p.wavelengths, l1b.wavelengths, atol=1e-9)
    np.testing.assert_allclose(p.fwhm, l1b.fwhm, atol=1e-9)
    dets = [n.split()[0] for n in p.band_names]
    assert dets.count("VNIR") == N_VNIR and dets.count("SWIR") == N_SWIR
    assert dets == l1b.detector
    # the 900-1000 nm overlap keeps both detectors, interleaved by wavelength
    ov = (p.wavelengths > 900) & (p.wavelengths < 1000)
    assert {d for d, o in zip(dets, ov) if o} == {"VNIR", "SWIR"}
    assert dets.index("SWIR") < len(dets) - 1 - dets[::-1].index("VNIR")
    # sensor geometry: no map grid although the L1B images carry a (pixel-size) geotransform
    assert p.crs is None and p.transform is None
    assert any("overlap" in n for n in p.notes)


def test_l1b_band_values_come_from_the_right_detector_image(l1b):
    p = READER.open(l1b.xml)
    root = ET.parse(l1b.xml).getroot()
    ids = root.findall("specific/bandCharacterisation/bandID")
    gains = [float(b.find("GainOfBand").text) for b in ids]
    offsets = [float(b.find("OffsetOfBand").text) for b in ids]
    wls = [float(b.find("wavelengthCenterOfBand").text) for b in ids]
    n_vnir = int(root.find("product/image/vnir/channels").text)
    assert n_vnir == N_VNIR
    for xml_k in (0, N_VNIR - 1, N_VNIR, N_VNIR + 5, 223):  # XML (detector) order
        k = int(np.flatnonzero(np.isclose(p.wavelengths, wls[xml_k]))[0])
        img, band = (l1b.images[0], xml_k + 1) if xml_k < N_VNIR else (l1b.images[1], xml_k - N_VNIR + 1)
        with rasterio.open(img) as ds:
            dn = ds.read(band, window=((3, 11), (7, 19))).astype(np.float32)
        got = p.source([k]).read(3, 11, 7, 19)[:, :, 0]
        np.testing.assert_array_equal(got, dn * np.float32(gains[xml_k]) + np.float32(offsets[xml_k]))
        assert np.nanmax(np.abs(got)) < 1000  # radiance, not DN
        assert np.nanmax(np.abs(dn)) > 1000


# ------------------------------------------------------------------------------------------ reading

@pytest.mark.parametrize("win", [(0, 108, 0, 108), (0, 4, 0, 108), (2, 17, 50, 108), (37, 38, 41, 42)])
def test_l2a_windows_equal_cube_within_quantisation(l2a, win):
    p = READER.open(l2a.xml)
    src = p.source(range(224))
    assert isinstance(src, Source)
    assert src.shape == p.shape and src.nodata is None and src.read_bytes == 4
    assert src.block_shape is not None
    r0, r1, c0, c1 = win
    got = src.read(r0, r1, c0, c1)
    assert got.dtype == np.float32 and got.shape == (r1 - r0, c1 - c0, 224)
    np.testing.assert_array_equal(got, l2a.expected[r0:r1, c0:c1])
    truth = l2a.truth[r0:r1, c0:c1]
    assert np.array_equal(np.isnan(got), np.isnan(truth))
    ok = np.isfinite(truth)
    assert np.all(np.abs(got[ok] - truth[ok]) <= 0.5e-4 + 1e-6)  # GainOfBand 0.0001: int16 quantisation


def test_band_subset_in_requested_order(l2a, l1b):
    for f in (l2a, l1b):
        p = READER.open(f.xml)
        idx = [200, 3, 95, 90, 3, 150]
        got = p.source(idx).read(10, 30, 20, 45)
        np.testing.assert_array_equal(got, f.expected[10:30, 20:45][:, :, idx])
        assert p.source(idx).shape == (p.shape[0], p.shape[1], len(idx))


def test_l1b_windows_equal_cube(l1b):
    p = READER.open(l1b.xml)
    src = p.source(range(224))
    assert src.read_bytes == 8  # two images copied into one block
    got = src.read(20, 70, 5, 99)
    np.testing.assert_array_equal(got, l1b.expected[20:70, 5:99])
    truth = l1b.truth[20:70, 5:99]
    # quantisation of DN * gain + offset: half a gain step (float32 rounding on top)
    assert np.all(np.abs(got - truth) <= 0.5 * l1b.gains.astype(np.float32) + 1e-4 * np.abs(truth) + 1e-6)


def test_nodata_margin_and_nodata_bands_are_nan(l2a):
    p = READER.open(l2a.xml)
    m = l2a.margin
    assert m > 0
    got = p.source(range(224)).read(0, p.shape[0], 0, p.shape[1])
    assert np.isnan(got[:m]).all() and np.isnan(got[-m:]).all()
    assert np.isnan(got[:, :m]).all() and np.isnan(got[:, -m:]).all()
    assert np.isnan(got[:, :, ~p.good]).all()
    inner = got[m:-m, m:-m][:, :, p.good]
    assert np.isfinite(inner).all()
    with rasterio.open(l2a.images[0]) as ds:
        assert ds.nodata == -32768 and ds.dtypes[0] == "int16"
        assert ds.interleaving.name == "pixel"
        raw = ds.read(1, window=((0, 1), (0, 1)))
    assert raw[0, 0] == -32768


def test_gain_and_offset_are_read_from_the_xml(l2a, tmp_path):
    xml = copy_product(l2a, tmp_path / "gain")
    tree = ET.parse(xml)
    b0 = tree.getroot().find("specific/bandCharacterisation/bandID")
    b0.find("GainOfBand").text = "0.0002"
    b0.find("OffsetOfBand").text = "0.5"
    tree.write(xml, encoding="UTF-8", xml_declaration=True)
    p = READER.open(xml)
    got = p.source([0, 1]).read(10, 20, 10, 20)
    ref = l2a.expected[10:20, 10:20]
    dn = np.rint(ref[:, :, 0] / np.float32(1e-4))
    np.testing.assert_allclose(got[:, :, 0], dn * 2e-4 + 0.5, rtol=1e-6)
    np.testing.assert_array_equal(got[:, :, 1], ref[:, :, 1])


def test_envi_bsq_product(l2a_envi):
    p = READER.open(l2a_envi.xml)
    assert p.shape == l2a_envi.expected.shape
    assert p.crs.to_epsg() == 32633 and p.transform == l2a_envi.transform
    got = p.source(range(224)).read(0, p.shape[0], 0, p.shape[1])
    np.testing.assert_array_equal(got, l2a_envi.expected)
    q = READER.open(l2a_envi.images[0])  # the .BSQ itself
    assert q.path == p.path


@pytest.mark.parametrize("interleave", ["BIL", "BIP"])
def test_envi_bil_and_bip_products(scene, tmp_path, interleave):
    cube, _ = scene
    f = build_enmap(tmp_path, cube[:12, :15], level="L2A", fmt="ENVI", interleave=interleave)
    assert f.images[0].suffix == "." + interleave
    p = READER.open(f.images[0])
    np.testing.assert_array_equal(p.source(range(224)).read(0, p.shape[0], 0, p.shape[1]), f.expected)


def test_open_product_dispatches_to_the_enmap_reader(l2a, l1b):
    from hadcore import products

    try:
        products.readers()
    except ImportError as exc:  # the other readers are integrated by the lead
        pytest.skip(f"not every reader module is present yet: {exc}")
    for f in (l2a, l1b):
        for path in [f.xml] + list(f.images):
            p = products.open_product(path)
            assert p is not None and p.kind.startswith("EnMAP") and p.path == str(f.xml)
    assert products.open_product(l2a.gt_path) is None or not products.open_product(l2a.gt_path).kind.startswith("EnMAP")


def test_source_pickles_and_reads_after_unpickling(l2a, l1b):
    for f in (l2a, l1b):
        src = READER.open(f.xml).source(list(range(0, 224, 2)))
        first = src.read(5, 25, 5, 30)
        clone = pickle.loads(pickle.dumps(src))
        np.testing.assert_array_equal(clone.read(5, 25, 5, 30), first)
        fresh = pickle.loads(pickle.dumps(READER.open(f.xml).source([7, 8])))  # pickled before any read
        np.testing.assert_array_equal(fresh.read(0, 3, 0, 3), f.expected[:3, :3, 7:9])


def test_band_index_out_of_range(l2a):
    p = READER.open(l2a.xml)
    with pytest.raises(InputError) as e:
        p.source([0, 224])
    one_line(e, "224")
    with pytest.raises(InputError):
        p.source([])


# ------------------------------------------------------------------------------------------ bad inputs

@pytest.mark.parametrize("which", ["l2a", "l2a_envi"])
def test_truncated_image_is_a_one_line_file_error(which, request, tmp_path):
    f = request.getfixturevalue(which)
    xml = copy_product(f, tmp_path / "trunc")
    img = xml.parent / f.images[0].name
    size = os.path.getsize(img)
    with open(img, "r+b") as fh:
        fh.truncate(size // 2)
    p = READER.open(xml)
    with pytest.raises(FileError) as e:
        p.source(range(224)).read(0, p.shape[0], 0, p.shape[1])
    one_line(e, img.name)


def test_image_with_a_broken_header_is_a_one_line_file_error(l2a, tmp_path):
    xml = copy_product(l2a, tmp_path / "hdr")
    img = xml.parent / l2a.images[0].name
    img.write_bytes(b"II*\x00garbage")
    with pytest.raises(FileError) as e:
        READER.open(xml)
    one_line(e, img.name)


def test_xml_without_wavelengths(scene, tmp_path):
    cube, _ = scene
    f = build_enmap(tmp_path, cube[:10, :12], with_wavelengths=False)
    assert READER.sniff(f.xml)
    with pytest.raises(FileError) as e:
        READER.open(f.xml)
    one_line(e, f.xml.name, "wavelength")


@pytest.mark.parametrize("level", ["L2A", "L1B"])
def test_xml_whose_image_is_missing(scene, tmp_path, level):
    cube, _ = scene
    f = build_enmap(tmp_path, cube[:10, :12], level=level)
    f.images[-1].unlink()
    assert READER.sniff(f.xml)
    with pytest.raises(FileError) as e:
        READER.open(f.xml)
    one_line(e, f.xml.name, "missing")


def test_truncated_xml_is_a_one_line_file_error(l2a, tmp_path):
    xml = copy_product(l2a, tmp_path / "x")
    text = xml.read_bytes()
    xml.write_bytes(text[: len(text) // 3])
    assert READER.sniff(xml)  # still EnMAP's root element and product name
    with pytest.raises(FileError) as e:
        READER.open(xml)
    one_line(e, xml.name)


def test_image_band_count_must_match_the_xml(l2a, tmp_path):
    xml = copy_product(l2a, tmp_path / "count")
    img = xml.parent / l2a.images[0].name
    with rasterio.open(l2a.images[0]) as ds:
        prof, arr = ds.profile, ds.read(list(range(1, 11)))
    prof.update(count=10)
    with rasterio.open(img, "w", **prof) as dst:
        dst.write(arr)
    with pytest.raises(FileError) as e:
        READER.open(xml)
    one_line(e, "224")


def test_every_band_flagged_bad(l2a, tmp_path):
    xml = copy_product(l2a, tmp_path / "bad")
    tree = ET.parse(xml)
    for b in tree.getroot().findall("product/bandStatistics/bandID"):
        b.find("mean").text = "-1000000"
        b.find("stdDeviation").text = "0"
    tree.write(xml, encoding="UTF-8", xml_declaration=True)
    with pytest.raises(FileError) as e:
        READER.open(xml)
    one_line(e, xml.name, "no-data")


def test_open_a_file_without_metadata(l2a, tmp_path):
    lone = tmp_path / l2a.images[0].name
    shutil.copy(l2a.images[0], lone)
    with pytest.raises(FileError) as e:
        READER.open(lone)
    one_line(e, lone.name, "METADATA.XML")


# ------------------------------------------------------------------------------------------ end to end

@pytest.mark.parametrize("which", ["l2a", "l1b"])
def test_rx_end_to_end_matches_the_cube(which, request):
    f = request.getfixturevalue(which)
    p = READER.open(f.xml)
    idx = np.flatnonzero(p.good)
    sink, info = run(get_detector("rx"), p.source(idx), mem_limit_mb=64)
    scores = sink.array
    assert scores.shape == p.shape[:2] and scores.dtype == np.float32
    cube_used = f.expected[:, :, idx]
    ref = get_detector("rx").detect(cube_used)
    assert np.array_equal(np.isnan(scores), np.isnan(ref))
    if f.margin:
        assert np.isnan(scores[: f.margin]).all()
    ok = np.isfinite(ref)
    assert ok.sum() > 0.9 * (p.shape[0] - 2 * f.margin) * (p.shape[1] - 2 * f.margin)
    np.testing.assert_allclose(scores[ok], ref[ok], rtol=1e-4, atol=1e-4 * float(np.nanmax(ref)))
    # the anomalies of the benchmark scene still stand out through the product
    gt = f.gt.astype(bool)
    assert np.nanmean(scores[gt]) > 2 * np.nanmean(scores[ok & ~gt])
