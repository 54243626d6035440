"""The provider inside a real QGIS: every registry detector is an algorithm, with its parameters."""

from __future__ import annotations

import hadcore
import pytest
from qgis.core import (
    QgsApplication,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from conftest import registry_detectors


def test_provider_lists_every_registry_detector_and_tools(plugin):
    ids = {alg.id() for alg in plugin.algorithms()}
    expected = {f"hadcore:{n}" for n in hadcore.list_detectors()} | {"hadcore:vectorize", "hadcore:evaluate"}
    assert ids == expected
    assert plugin.id() == "hadcore"


@pytest.mark.parametrize("name", registry_detectors())
def test_algorithm_parameters_follow_the_declaration(plugin, name):
    from hadcore_qgis.algorithms import qgis_param_name

    cls = hadcore.get_detector_class(name)
    alg = QgsApplication.processingRegistry().createAlgorithmById(f"hadcore:{name}")
    assert alg is not None
    assert alg.group() and alg.groupId() == cls.family
    help_text = alg.shortHelpString()
    assert cls.summary.split()[0] in help_text
    assert cls.reference.split(",")[0].split()[-1] in help_text  # an author's name of the citation
    for common in ("INPUT", "BANDS", "SCALE", "OUTPUT", "THRESHOLD", "DETECTIONS"):
        assert alg.parameterDefinition(common) is not None, common
    for p in cls.params:
        d = alg.parameterDefinition(qgis_param_name(p.name))
        assert d is not None, p.name
        assert p.help.rstrip(".")[:20] in d.description()
        if p.type in ("int", "float"):
            assert isinstance(d, QgsProcessingParameterNumber)
            from hadcore_qgis import compat

            assert d.dataType() == (compat.NUMBER_INTEGER if p.type == "int" else compat.NUMBER_DOUBLE)
            assert d.defaultValue() == pytest.approx(p.default)
            if p.min is not None:
                assert d.minimum() == pytest.approx(p.min)
            if p.max is not None:
                assert d.maximum() == pytest.approx(p.max)
        elif p.type == "choice":
            assert isinstance(d, QgsProcessingParameterEnum)
            assert d.options() == [str(c) for c in p.choices]
            assert d.options()[d.defaultValue()] == str(p.default)
        elif p.type == "bool":
            assert isinstance(d, QgsProcessingParameterBoolean)
            assert d.defaultValue() == p.default
        elif p.type == "str":
            assert isinstance(d, QgsProcessingParameterString)
        assert bool(d.flags() & d.FlagOptional) == bool(p.optional)


def test_groups_by_family(plugin):
    groups = {alg.groupId(): alg.group() for alg in plugin.algorithms()}
    assert groups["tools"] == "Tools"
    for name in hadcore.list_detectors():
        fam = hadcore.get_detector_class(name).family
        assert fam in groups
    if "statistical" in groups:
        assert groups["statistical"] == "Statistical detectors"


def test_a_deprecation_warning_from_the_plugin_is_an_error():
    """pytest.ini turns DeprecationWarning raised from hadcore_qgis into an error (QGIS 3.44 deprecates API the
    plugin must not use: the run in 3.44 fails on any); one from elsewhere (QGIS's own Python) stays a warning."""
    import warnings

    with pytest.raises(DeprecationWarning):
        warnings.warn_explicit("deprecated", DeprecationWarning, "algorithms.py", 1, module="hadcore_qgis.algorithms")
    with pytest.warns(DeprecationWarning):
        warnings.warn_explicit("deprecated", DeprecationWarning, "utils.py", 1, module="qgis.utils")


def test_compat_names_resolve_in_this_qgis(plugin):
    """Every enum compat.py resolves exists in this QGIS and is the member QGIS's own API names (the newest
    spelling where this QGIS has it); a name no QGIS has is an AttributeError naming the candidates."""
    from qgis.core import Qgis, QgsField, QgsProcessing
    from qgis.PyQt.QtCore import QVariant

    from hadcore_qgis import compat

    assert compat.MSG_WARNING == Qgis.MessageLevel.Warning
    polygon = getattr(getattr(Qgis, "ProcessingSourceType", None), "VectorPolygon", None)
    assert compat.SOURCE_VECTOR_POLYGON == (polygon if polygon is not None
                                            else QgsProcessing.SourceType.TypeVectorPolygon)
    for name in ("NUMBER_INTEGER", "NUMBER_DOUBLE", "FILE_BEHAVIOR_FILE", "PARAMETER_FLAG_ADVANCED", "SINK_FAST_INSERT",
                 "WKB_MULTIPOLYGON", "SHADER_LINEAR", "SHADER_CONTINUOUS", "RANGE_CUMULATIVE_CUT",
                 "RANGE_WHOLE_RASTER", "RANGE_EXACT", "UNIT_POINTS", "UNIT_MILLIMETERS", "LABEL_AROUND_POINT",
                 "LAYER_RASTER", "LAYER_VECTOR"):
        assert getattr(compat, name) is not None, name
    with pytest.raises(AttributeError, match="Qgis.NoSuchEnum.Member, QgsNoSuchClass.X"):
        compat.resolve("Qgis.NoSuchEnum.Member", "QgsNoSuchClass.X")
    for kind, qtype in (("int", QVariant.Type.Int), ("double", QVariant.Type.Double)):  # qt6: ok (the test's oracle)
        f = compat.field("x", kind)
        assert isinstance(f, QgsField) and f.name() == "x" and int(f.type()) == int(qtype), (kind, f.type())


def test_the_default_is_listed_first(plugin):
    """auto, the recommended default, is the first algorithm of hadcore in the Processing toolbox's own model (as
    the toolbox dock shows it: groups sorted by name), alone in its group; its help says why it is the default."""
    from qgis.core import QgsApplication
    from qgis.gui import QgsProcessingToolboxProxyModel
    from qgis.PyQt.QtCore import QModelIndex

    model = QgsProcessingToolboxProxyModel(None, QgsApplication.processingRegistry())
    top = [model.index(r, 0, QModelIndex()) for r in range(model.rowCount(QModelIndex()))]
    ours = [i for i in top if "hadcore" in str(model.data(i))]
    assert len(ours) == 1
    groups = [model.index(r, 0, ours[0]) for r in range(model.rowCount(ours[0]))]
    assert model.data(groups[0]) == "Anomaly detection (recommended default)"
    first = [model.data(model.index(r, 0, groups[0])) for r in range(model.rowCount(groups[0]))]
    assert first == [plugin.algorithm("auto").displayName()]
    help_text = plugin.algorithm("auto").shortHelpString()
    assert "Why" in help_text and "leave-one-scene-out" in help_text
