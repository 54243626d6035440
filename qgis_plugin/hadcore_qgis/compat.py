"""The QGIS API names that changed between QGIS 3.22 and QGIS 4, in one place.

QGIS moved most enums into the ``Qgis`` namespace under new names (3.30-3.36: ``QgsProcessing.TypeVectorPolygon``
-> ``Qgis.ProcessingSourceType.VectorPolygon``, ``QgsColorRampShader.Interpolated`` ->
``Qgis.ShaderInterpolationMethod.Linear``, ...), and QGIS 3.44 dropped some unscoped spellings altogether
(``QgsRasterMinMaxOrigin.WholeRaster`` is an AttributeError there). QGIS 4 (Qt 6, PyQt6) knows scoped names
only. So every enum the plugin uses is resolved here once, at import: the newest name first, then the scoped
name QGIS 3.22 has (both spellings are scoped, so both work with PyQt6 as with PyQt5). The rest of the plugin
uses these constants and never asks which QGIS it runs in.

:func:`field` makes a ``QgsField`` without the constructor that QGIS 3.38+ deprecates (``QVariant.Type``).
"""

from __future__ import annotations

import functools

from qgis import core as _core
from qgis.PyQt import QtCore as _QtCore


def resolve(*names: str):
    """The first of the dotted ``names`` (``"Qgis.MessageLevel.Warning"``) that this QGIS has.

    Names start with a class of ``qgis.core`` or ``qgis.PyQt.QtCore``. Raises AttributeError naming every
    candidate when none resolves (a QGIS too old or too new for this plugin: fails at import, not mid-run).
    """
    for name in names:
        head, *rest = name.split(".")
        root = getattr(_core, head, None) or getattr(_QtCore, head, None)
        if root is None:
            continue
        try:
            return functools.reduce(getattr, rest, root)
        except AttributeError:
            continue
    raise AttributeError(f"none of {', '.join(names)} exists in this QGIS")


# messages
MSG_INFO = resolve("Qgis.MessageLevel.Info")
MSG_WARNING = resolve("Qgis.MessageLevel.Warning")
# processing parameters and outputs
SOURCE_VECTOR_TABLE = resolve("Qgis.ProcessingSourceType.Vector", "QgsProcessing.SourceType.TypeVector")
SOURCE_VECTOR_POLYGON = resolve("Qgis.ProcessingSourceType.VectorPolygon", "QgsProcessing.SourceType.TypeVectorPolygon")
NUMBER_INTEGER = resolve("Qgis.ProcessingNumberParameterType.Integer", "QgsProcessingParameterNumber.Type.Integer")
NUMBER_DOUBLE = resolve("Qgis.ProcessingNumberParameterType.Double", "QgsProcessingParameterNumber.Type.Double")
FILE_BEHAVIOR_FILE = resolve("Qgis.ProcessingFileParameterBehavior.File", "QgsProcessingParameterFile.Behavior.File")
PARAMETER_FLAG_ADVANCED = resolve("Qgis.ProcessingParameterFlag.Advanced",
                                  "QgsProcessingParameterDefinition.Flag.FlagAdvanced")
SINK_FAST_INSERT = resolve("QgsFeatureSink.Flag.FastInsert")
WKB_MULTIPOLYGON = resolve("Qgis.WkbType.MultiPolygon", "QgsWkbTypes.Type.MultiPolygon")
WKB_NO_GEOMETRY = resolve("Qgis.WkbType.NoGeometry", "QgsWkbTypes.Type.NoGeometry")
# raster rendering
SHADER_LINEAR = resolve("Qgis.ShaderInterpolationMethod.Linear", "QgsColorRampShader.Type.Interpolated")
SHADER_CONTINUOUS = resolve("Qgis.ShaderClassificationMethod.Continuous",
                            "QgsColorRampShader.ClassificationMode.Continuous")
RANGE_CUMULATIVE_CUT = resolve("Qgis.RasterRangeLimit.CumulativeCut", "QgsRasterMinMaxOrigin.Limits.CumulativeCut")
RANGE_WHOLE_RASTER = resolve("Qgis.RasterRangeExtent.WholeRaster", "QgsRasterMinMaxOrigin.Extent.WholeRaster")
RANGE_EXACT = resolve("Qgis.RasterRangeAccuracy.Exact", "QgsRasterMinMaxOrigin.StatAccuracy.Exact")
# symbols and labels
UNIT_POINTS = resolve("Qgis.RenderUnit.Points", "QgsUnitTypes.RenderUnit.RenderPoints")
UNIT_MILLIMETERS = resolve("Qgis.RenderUnit.Millimeters", "QgsUnitTypes.RenderUnit.RenderMillimeters")
LABEL_AROUND_POINT = resolve("Qgis.LabelPlacement.AroundPoint", "QgsPalLayerSettings.Placement.AroundPoint")
LAYER_RASTER = resolve("Qgis.LayerType.Raster", "QgsMapLayerType.RasterLayer")
LAYER_VECTOR = resolve("Qgis.LayerType.Vector", "QgsMapLayerType.VectorLayer")

#: field types of :func:`field`
_FIELD_TYPES = {"int": "Int", "double": "Double"}


def field(name: str, kind: str):
    """A ``QgsField`` of ``kind`` (``"int"`` or ``"double"``).

    QGIS 3.38+ takes a ``QMetaType.Type`` (the ``QVariant.Type`` constructor is deprecated there and gone with
    Qt 6); QGIS 3.22-3.36 only the ``QVariant.Type`` one, and reject a ``QMetaType.Type`` with a TypeError.
    """
    member = _FIELD_TYPES[kind]
    try:
        return _core.QgsField(name, getattr(_QtCore.QMetaType.Type, member))
    except TypeError:
        return _core.QgsField(name, getattr(_QtCore.QVariant.Type, member))  # qt6: ok (QGIS 3.22-3.36 only)
