"""Small EMIT L1B radiance / L2A reflectance granules (netCDF-4) holding a real benchmark cube.

The layout follows what NASA's Science Data System writes for the LP DAAC. Sources (cited below by tag):

[L2A]   emit-sds/emit-sds-l2a, ``output_conversion.py`` (the L2A RFL netCDF writer)
        https://github.com/emit-sds/emit-sds-l2a/blob/develop/output_conversion.py (read at b0bcc68)
[L1B]   emit-sds/emit-sds-l1b, ``output_conversion.py`` (the L1B RAD netCDF writer)
        https://github.com/emit-sds/emit-sds-l1b/blob/develop/output_conversion.py (read at 8864da1)
[UTILS] emit-sds/emit-utils, ``emit_utils/daac_converter.py``: ``add_variable`` (fill values), ``makeDims``,
        ``makeGlobalAttrBase`` / ``makeGlobalAttr`` (root attributes, ``spatial_ref`` / ``geotransform``),
        ``add_loc`` (``location/lon|lat|elev``), ``add_glt`` (``location/glt_x|glt_y``)
        https://github.com/emit-sds/emit-utils/blob/develop/emit_utils/daac_converter.py (read at 5e92d58)
[TOOLS] nasa/EMIT-Data-Resources, ``python/modules/emit_tools.py``: ``apply_glt`` / ``ortho_xr`` (GLT 1-based,
        0 = no data, fill -9999), ``coord_vects`` (GDAL-order geotransform, "no rotation for EMIT data")
        https://github.com/nasa/EMIT-Data-Resources/blob/main/python/modules/emit_tools.py
[DMR]   OPeNDAP DMR++ sidecar of the real granule EMIT_L2A_RFL_001_20230316T045133_2307503_005.nc (an excerpt of
        its head, found through a code search; no address recorded): dimensions
        downtrack 2176, crosstrack 1242, bands 285, ortho_y 2547, ortho_x 3325; Float32 ``reflectance``
        (/downtrack, /crosstrack, /bands) with a ``_FillValue``
[LPDAAC] LP DAAC product pages EMITL2ARFL v001 / EMITL1BRAD v001 (https://lpdaac.usgs.gov/products/emitl2arflv001/,
        .../emitl1bradv001/): 285 bands, 381-2493 nm, ~7.5 nm sampling; a ``location`` group with the GLT and
        WGS-84 latitude / longitude / SRTM elevation; 60 m pixels
[NB]    nasa/EMIT-Data-Resources how-to notebook outputs (how-tos/How_to_Extract_Area.ipynb, in commit 8afc27d6
        https://github.com/nasa/EMIT-Data-Resources/commit/8afc27d6af2146f515257e13479e3cabbca16a1d): a granule's
        ``geotransform`` [-62.512..., 5.42232520e-04, -0.0, ...] and ``spatial_ref`` GEOGCS["WGS 84", ...]

What is synthetic (not from the sources): the cube (a shared benchmark scene, its bands linearly resampled to
EMIT's 285 and scaled to reflectance / radiance, plus a little seeded noise), the swath-to-map geometry (a
rotation and shift of the swath onto a north-up EPSG:4326 grid), the exact wavelength / FWHM values (a smooth
stand-in in the documented range), and the attribute texts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

__all__ = ["make_emit", "emit_swath", "emit_wavelengths", "emit_fwhm", "emit_good", "emit_geometry",
           "N_BANDS", "FILL", "RESOLUTION_DEG"]

#: [LPDAAC] / [DMR]: 285 bands
N_BANDS = 285
#: [UTILS] ``NODATA = -9999.`` used as ``fill_value`` of every float variable; [TOOLS] fill_value=-9999
FILL = -9999.0
#: [UTILS] ``add_variable``: u1 variables get ``np.uint8(np.mod(int(NODATA), 2**8))`` = 241 as fill value
FILL_U1 = np.uint8(np.mod(int(FILL), 2 ** 8))
#: [UTILS] ``add_glt(..., fill_value=0)``: GLT no-data value 0; [TOOLS] ``GLT_NODATA_VALUE=0``
GLT_NODATA = 0
#: [NB] geotransform pixel size 5.42232520e-04 degrees (60 m)
RESOLUTION_DEG = 0.000542232520256

#: default granule names, Earthdata's EMIT naming convention (https://www.earthdata.nasa.gov/data/instruments/
#: emit-imaging-spectrometer, "EMIT Filenames"): EMIT_<level>_<type>_<version>_<date>T<time>_<orbit>_<scene>
NAMES = {"L2A": "EMIT_L2A_RFL_001_20230316T045133_2307503_005.nc",
         "L1B": "EMIT_L1B_RAD_001_20230316T045133_2307503_005.nc"}

#: per level: the data variable, its long_name and units ([L2A]: reflectance "unitless"; [L1B]: radiance
#: "uW/cm^2/SR/nm"), the product title ([L2A] / [L1B] ``nc_ds.title``), and the default scale of the ABU / AVIRIS
#: raw DN into those units (synthetic: DN / 10000 = reflectance; radiance ~ 0-16)
LEVELS = {
    "L2A": ("reflectance", "Surface Reflectance", "unitless", "EMIT L2A Estimated Surface Reflectance 60 m V001",
            1e-4),
    "L1B": ("radiance", "Radiance Data", "uW/cm^2/SR/nm", "EMIT L1B At-Sensor Calibrated Radiance Data 60 m V001",
            2.5e-3),
}


def emit_wavelengths() -> np.ndarray:
    """(285,) float32 band centres in nm, ascending over 381-2493 nm ([LPDAAC]; ~7.4 nm apart)."""
    return np.linspace(381.00558, 2492.9102, N_BANDS).astype(np.float32)


def emit_fwhm() -> np.ndarray:
    """(285,) float32 FWHM in nm (a smooth stand-in near EMIT's ~8.5 nm; the values are synthetic)."""
    t = np.linspace(0.0, 1.0, N_BANDS)
    return (8.5 + 0.35 * np.sin(2 * np.pi * t)).astype(np.float32)


def emit_good(wavelengths=None) -> np.ndarray:
    """(285,) uint8 ``good_wavelengths``: 0 in the water-vapour windows. [L2A] sets bbl = 0 for 1325 < wl < 1435
    and 1770 < wl < 1962 nm when the ENVI header has no bbl ("data pre January", its comment says), 1
    elsewhere; otherwise it copies the ENVI header's bbl."""
    wl = emit_wavelengths() if wavelengths is None else np.asarray(wavelengths, dtype=np.float64)
    good = np.ones(wl.size, dtype=np.uint8)
    good[(wl > 1325) & (wl < 1435)] = 0
    good[(wl > 1770) & (wl < 1962)] = 0
    return good


def emit_swath(cube: np.ndarray, level: str = "L2A", scale: Optional[float] = None, noise: float = 0.002,
               seed: int = 0) -> np.ndarray:
    """The (H, W, 285) float32 swath written for a benchmark cube (H, W, B): bands linearly resampled onto 285
    (the source bands taken as evenly spread over EMIT's range), times ``scale`` (default: raw DN to the level's
    units, see LEVELS), plus seeded Gaussian noise of ``noise`` x the cube's mean (without it the 285 bands would
    be an exact linear image of B < 285 bands: a rank-B covariance whose pseudo-inverse depends on rounding)."""
    cube = np.asarray(cube, dtype=np.float64)
    H, W, B = cube.shape
    if scale is None:
        scale = LEVELS[level][4]
    if B == N_BANDS:
        out = cube.copy()
    else:
        pos = np.linspace(0.0, B - 1.0, N_BANDS)
        i0 = np.minimum(np.floor(pos).astype(int), B - 2)
        w = pos - i0
        out = cube[:, :, i0] * (1.0 - w) + cube[:, :, i0 + 1] * w
    out *= scale
    if noise:
        rng = np.random.default_rng(seed)
        out += rng.normal(0.0, noise * float(np.mean(np.abs(out))), size=out.shape)
    return out.astype(np.float32)


def emit_geometry(H: int, W: int, angle_deg: float = 25.0, margin: int = 3, lon0: float = -118.43,
                  lat0: float = 33.96):
    """A swath (H downtrack x W crosstrack) rotated by ``angle_deg`` onto a north-up EPSG:4326 grid of EMIT's
    pixel size, with ``margin`` no-data pixels around the footprint.

    Returns ``(glt_x, glt_y, lon, lat, geotransform)``: glt_x / glt_y (Ho, Wo) int32, the 1-based crosstrack
    (sample) / downtrack (line) index of the swath pixel nearest each map pixel centre, 0 outside the swath
    ([UTILS] add_glt: glt_x "GLT Sample Lookup", glt_y "GLT Line Lookup"; [TOOLS] apply_glt: the swath value
    at [glt_y - 1, glt_x - 1]); lon / lat (H, W) float64 of the swath pixel centres; geotransform the GDAL
    6-tuple (west, res, 0, north, 0, -res) of the map grid.
    """
    a = np.deg2rad(angle_deg)
    ca, sa = np.cos(a), np.sin(a)
    rr, cc = np.mgrid[0:H, 0:W].astype(np.float64)
    u, v = cc - (W - 1) / 2.0, rr - (H - 1) / 2.0  # swath offsets (crosstrack, downtrack) from its centre
    east, south = u * ca - v * sa, u * sa + v * ca  # map offsets in pixels (east, south)
    e0 = np.floor(east.min() - 0.5) - margin
    s0 = np.floor(south.min() - 0.5) - margin
    Wo = int(np.ceil(east.max() + 0.5 - e0)) + margin
    Ho = int(np.ceil(south.max() + 0.5 - s0)) + margin
    # map pixel centres -> swath coordinates by the inverse rotation, nearest swath pixel
    ii, jj = np.mgrid[0:Ho, 0:Wo].astype(np.float64)
    pe, ps = e0 + jj + 0.5, s0 + ii + 0.5
    pu, pv = pe * ca + ps * sa, -pe * sa + ps * ca
    c = np.rint(pu + (W - 1) / 2.0).astype(np.int64)
    r = np.rint(pv + (H - 1) / 2.0).astype(np.int64)
    inside = (r >= 0) & (r < H) & (c >= 0) & (c < W)
    glt_x = np.where(inside, c + 1, GLT_NODATA).astype(np.int32)
    glt_y = np.where(inside, r + 1, GLT_NODATA).astype(np.int32)
    # [NB] / [TOOLS] coord_vects: GT[0] west edge, GT[1] pixel width, GT[3] north edge, GT[5] = -pixel height,
    # GT[2] = GT[4] = 0 ("no rotation for EMIT data")
    res = RESOLUTION_DEG
    gt = (lon0, res, 0.0, lat0, 0.0, -res)
    lon = lon0 + (east - e0) * res
    lat = lat0 - (south - s0) * res
    return glt_x, glt_y, lon, lat, gt


def _wkt_4326() -> str:
    # [UTILS] makeGlobalAttr: spatial_ref = the GLT's GDAL GetProjection() (WKT1); [NB] GEOGCS["WGS 84", ...]
    from rasterio.crs import CRS

    return CRS.from_epsg(4326).to_wkt()


def make_emit(folder, cube: np.ndarray, gt: Optional[np.ndarray] = None, level: str = "L2A", *,
              name: Optional[str] = None, angle_deg: float = 25.0, margin: int = 3,
              fill: Iterable[Sequence] = (), good: Optional[np.ndarray] = None, drop: Iterable[str] = (),
              geotransform=None, wavelengths: Optional[np.ndarray] = None, seed: int = 0) -> Path:
    """Write an EMIT ``level`` ("L2A" reflectance or "L1B" radiance) granule into ``folder``; returns its path.

    ``cube`` (H, W, B): a 285-band cube is written as given (physical units); any other band count goes through
    :func:`emit_swath` first. ``fill``: (row, col) pixels set to the fill value in every band, or (row, col, band)
    single values. ``good``: the ``good_wavelengths`` flags (default :func:`emit_good`; L2A only, [L1B] writes
    none). ``drop``: parts to leave out, for error tests: the data variable name, "wavelengths", "fwhm",
    "good_wavelengths", "location" (the whole group), "glt", "geotransform", "spatial_ref". ``geotransform``:
    overrides the attribute's value. ``gt`` (H, W): written beside the granule as ``<stem>_gt.tif`` (swath
    geometry; hadcore's sibling ground-truth convention).
    """
    import netCDF4

    if level not in LEVELS:
        raise ValueError(f"level must be one of {sorted(LEVELS)}")
    var, long_name, units, title, _ = LEVELS[level]
    drop = set(drop)
    swath = np.asarray(cube, dtype=np.float32)
    if swath.shape[2] != N_BANDS:
        swath = emit_swath(cube, level, seed=seed)
    else:
        swath = swath.copy()
    for f in fill:
        if len(f) == 2:
            swath[f[0], f[1], :] = FILL
        else:
            swath[f[0], f[1], f[2]] = FILL
    H, W, B = swath.shape
    wl = emit_wavelengths() if wavelengths is None else np.asarray(wavelengths, dtype=np.float32)
    glt_x, glt_y, lon, lat, gtf = emit_geometry(H, W, angle_deg, margin)
    if geotransform is not None:
        gtf = geotransform

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or NAMES[level])
    # [L2A] / [L1B]: Dataset(filename, 'w', clobber=True, format='NETCDF4')
    nc = netCDF4.Dataset(path, "w", clobber=True, format="NETCDF4")
    try:
        # root attributes: [UTILS] makeGlobalAttrBase / makeGlobalAttr (names; the texts here are short stand-ins)
        nc.ncei_template_version = "NCEI_NetCDF_Swath_Template_v2.0"
        nc.summary = "EMIT test granule written by hadcore's test suite (a benchmark scene in EMIT's layout)."
        nc.keywords = "Imaging Spectroscopy, minerals, EMIT, dust, radiative forcing"
        nc.sensor = "EMIT (Earth Surface Mineral Dust Source Investigation)"
        nc.instrument = "EMIT"
        nc.platform = "ISS"
        nc.Conventions = "CF-1.63"
        nc.institution = "NASA Jet Propulsion Laboratory/California Institute of Technology"
        nc.naming_authority = "LPDAAC"
        nc.date_created = "2023-03-17T02:11:09Z"
        nc.project = "Earth Surface Mineral Dust Source Investigation"
        nc.flight_line = path.name[:31]
        nc.time_coverage_start = "2023-03-16T04:51:33+0000"
        nc.time_coverage_end = "2023-03-16T04:51:45+0000"
        nc.software_build_version = "010621"
        nc.product_version = "V001"
        nc.crosstrack_orientation = "as seen on ground"
        west, north = gtf[0], gtf[3] if len(gtf) > 3 else 0.0
        nc.westernmost_longitude = float(west)
        nc.northernmost_latitude = float(north)
        nc.easternmost_longitude = float(west + glt_x.shape[1] * RESOLUTION_DEG)
        nc.southernmost_latitude = float(north - glt_x.shape[0] * RESOLUTION_DEG)
        nc.spatialResolution = RESOLUTION_DEG
        if "spatial_ref" not in drop:
            nc.spatial_ref = _wkt_4326()  # [UTILS] gdal_ds.GetProjection() of the GLT
        if "geotransform" not in drop:
            nc.geotransform = tuple(float(g) for g in gtf)  # [UTILS] gdal_ds.GetGeoTransform(): 6 doubles
        nc.day_night_flag = "Day"
        nc.title = title  # [L2A] / [L1B] nc_ds.title

        # [UTILS] makeDims: downtrack = lines, crosstrack = samples, bands; ortho_y / ortho_x = the GLT's size
        nc.createDimension("downtrack", H)
        nc.createDimension("crosstrack", W)
        nc.createDimension("bands", B)
        if "location" not in drop and "glt" not in drop:
            nc.createDimension("ortho_y", glt_x.shape[0])
            nc.createDimension("ortho_x", glt_x.shape[1])

        def add(name, dtype, long_name_, units_, data, dims, fill_value=FILL, **kw):
            # [UTILS] add_variable: fill value -9999 (u1: 241), long_name and units attributes
            v = nc.createVariable(name, dtype, dims, fill_value=fill_value, **kw)
            v.long_name = long_name_
            if units_ is not None:
                v.units = units_
            v[...] = data

        # [L2A] / [L1B]: sensor_band_parameters/wavelengths and fwhm, f4, nm, dimension ("bands",)
        nc.createGroup("sensor_band_parameters")
        if "wavelengths" not in drop:
            add("sensor_band_parameters/wavelengths", "f4", "Wavelength Centers", "nm", wl, ("bands",))
        if "fwhm" not in drop:
            add("sensor_band_parameters/fwhm", "f4", "Full Width at Half Max", "nm", emit_fwhm(), ("bands",))
        if level == "L2A" and "good_wavelengths" not in drop:
            # [L2A]: good_wavelengths u1 "1 = good data, 0 = bad data", unitless (not in L1B RAD files)
            g = emit_good(wl) if good is None else np.asarray(good, dtype=np.uint8)
            add("sensor_band_parameters/good_wavelengths", "u1",
                "Wavelengths where reflectance is useable: 1 = good data, 0 = bad data", "unitless", g, ("bands",),
                fill_value=FILL_U1)

        if "location" not in drop:
            nc.createGroup("location")
            # [UTILS] add_loc: f8, ("downtrack", "crosstrack"), fill -9999
            add("location/lon", "d", "Longitude (WGS-84)", "degrees east", lon, ("downtrack", "crosstrack"))
            add("location/lat", "d", "Latitude (WGS-84)", "degrees north", lat, ("downtrack", "crosstrack"))
            elev = 30.0 + 0.25 * np.mgrid[0:H, 0:W][0]
            add("location/elev", "d", "Surface Elevation", "m", elev, ("downtrack", "crosstrack"))
            if "glt" not in drop:
                # [UTILS] add_glt: i4, ("ortho_y", "ortho_x"), zlib complevel 9, fill value 0
                add("location/glt_x", "i4", "GLT Sample Lookup", "pixel location", glt_x, ("ortho_y", "ortho_x"),
                    fill_value=GLT_NODATA, zlib=True, complevel=9)
                add("location/glt_y", "i4", "GLT Line Lookup", "pixel location", glt_y, ("ortho_y", "ortho_x"),
                    fill_value=GLT_NODATA, zlib=True, complevel=9)

        if var not in drop:
            # [L2A] reflectance / [L1B] radiance: f4, ("downtrack", "crosstrack", "bands"), no compression
            # (contiguous), fill -9999; [DMR] Float32 reflectance(/downtrack, /crosstrack, /bands)
            add(var, "f4", long_name, units, swath, ("downtrack", "crosstrack", "bands"))
    finally:
        nc.close()

    if gt is not None:
        import warnings

        import rasterio

        g = np.asarray(gt, dtype=np.uint8)
        with warnings.catch_warnings():  # swath geometry: no georeference, on purpose
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(path.with_name(path.stem + "_gt.tif"), "w", driver="GTiff", width=g.shape[1],
                               height=g.shape[0], count=1, dtype="uint8") as dst:
                dst.write(g, 1)
    return path
