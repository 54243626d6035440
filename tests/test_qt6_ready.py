"""The QGIS plugin is ready for QGIS 4 (Qt 6 / PyQt6): ``scripts/check_qt6.py`` finds nothing in it.

The checker reads source as an AST and imports nothing from QGIS or Qt, so these tests run anywhere (no
QGIS here). The first part tests the checker itself on small snippets; ``test_plugin_is_qt6_ready`` runs it on
``qgis_plugin/hadcore_qgis``.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "qgis_plugin" / "hadcore_qgis"


def _load_checker():
    spec = importlib.util.spec_from_file_location("check_qt6", REPO / "scripts" / "check_qt6.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while the class is built
    spec.loader.exec_module(module)
    return module


check_qt6 = _load_checker()


def findings_of(tmp_path: Path, source: str, name: str = "snippet.py", header: str = "from qgis.core import *\n"):
    """Findings of ``source`` written to a file (``header`` makes it a file that imports qgis)."""
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + textwrap.dedent(source), encoding="utf-8")
    return check_qt6.scan([path])


def rules_of(tmp_path: Path, source: str, **kw):
    return [f.rule for f in findings_of(tmp_path, source, **kw)]


# ------------------------------------------------------------------------------------------ each rule fires


@pytest.mark.parametrize("source, rule, needle", [
    ("from PyQt5.QtCore import Qt\n", "pyqt-import", "qgis.PyQt.QtCore"),
    ("from PyQt6 import QtCore\n", "pyqt-import", "qgis.PyQt"),
    ("import PyQt5.QtWidgets\n", "pyqt-import", "PyQt5.QtWidgets"),
    ("import sip\n", "pyqt-import", "from qgis.PyQt import sip"),
    ("dlg = object()\ndlg.exec_()\n", "exec_", "exec()"),
    ("from qgis.PyQt.QtWidgets import QAction\n", "qtgui-class", "qgis.PyQt.QtGui import QAction"),
    ("from qgis.PyQt.QtWidgets import QDialog, QShortcut\n", "qtgui-class", "QShortcut"),
    ("from qgis.PyQt.QtWidgets import QActionGroup\n", "qtgui-class", "QActionGroup"),
    ("from qgis.PyQt.QtCore import Qt\nx = Qt.AlignLeft\n", "unscoped-enum", "Qt.AlignmentFlag.AlignLeft"),
    ("from qgis.PyQt.QtCore import Qt\nx = Qt.NoBrush\n", "unscoped-enum", "Qt.BrushStyle.NoBrush"),
    ("from qgis.PyQt.QtCore import Qt\nx = Qt.red\n", "unscoped-enum", "Qt.GlobalColor.red"),
    ("from qgis.PyQt.QtCore import Qt\nx = Qt.Key_Escape\n", "unscoped-enum", "Qt.Key.Key_Escape"),
    ("from qgis.PyQt.QtCore import QEvent\nx = QEvent.DeferredDelete\n", "unscoped-enum", "QEvent.Type.DeferredDelete"),
    ("x = QgsProcessing.TypeVectorPolygon\n", "unscoped-enum", "Qgis.ProcessingSourceType.VectorPolygon"),
    ("x = QgsProcessingParameterNumber.Integer\n", "unscoped-enum", "Qgis.ProcessingNumberParameterType.Integer"),
    ("x = Qgis.Warning\n", "unscoped-enum", "Qgis.MessageLevel.Warning"),
    ("x = QgsUnitTypes.RenderMillimeters\n", "unscoped-enum", "Qgis.RenderUnit.Millimeters"),
    ("x = QgsColorRampShader.Interpolated\n", "unscoped-enum", "Qgis.ShaderInterpolationMethod.Linear"),
    ("x = QgsFeatureSink.FastInsert\n", "unscoped-enum", "QgsFeatureSink.Flag.FastInsert"),
    ("x = QgsRasterMinMaxOrigin.CumulativeCut\n", "unscoped-enum", "Qgis.RasterRangeLimit.CumulativeCut"),
    ("x = QgsPalLayerSettings.AroundPoint\n", "unscoped-enum", "Qgis.LabelPlacement.AroundPoint"),
    ("x = QgsSomethingNew.SomeMember\n", "unscoped-enum", "QgsSomethingNew.<EnumName>.SomeMember"),
    ("from qgis.PyQt.QtCore import QVariant\nx = QVariant.Int\n", "qvariant-type", "QMetaType.Type.Int"),
    ("from qgis.PyQt.QtCore import QVariant\nx = QVariant.String\n", "qvariant-type", "QMetaType.Type.QString"),
    ("from qgis.PyQt.QtCore import QVariant\nx = QVariant.Type\n", "qvariant-type", "QMetaType.Type"),
    ("from qgis.PyQt.QtCore import QVariant\nf = QgsField('n', QVariant.Double)\n", "qgsfield-type",
     "QMetaType.Type.Double"),
    ("x = QgsWkbTypes.MultiPolygon\n", "deprecated", "Qgis.WkbType.MultiPolygon"),
    ("x = QgsMapLayerType.RasterLayer\n", "deprecated", "Qgis.LayerType.Raster"),
    ("from qgis.PyQt.QtCore import QRegExp\n", "removed", "QRegularExpression"),
])
def test_rule_fires(tmp_path, source, rule, needle):
    found = findings_of(tmp_path, source)
    assert [f.rule for f in found] == [rule], found
    assert needle in found[0].message, found[0].message


def test_finding_format_and_line(tmp_path):
    found = findings_of(tmp_path, "\n\nfrom qgis.PyQt.QtCore import Qt\nx = Qt.AlignLeft\n", header="import qgis\n")
    assert len(found) == 1
    text = str(found[0])
    assert text.startswith(f"{tmp_path / 'snippet.py'}:5: Qt.AlignLeft: "), text


def test_module_and_alias_forms_fire(tmp_path):
    source = """
        from qgis.PyQt import QtCore, QtWidgets
        from qgis.core import Qgis as Q
        import qgis.core
        a = QtCore.Qt.AlignLeft
        b = Q.Warning
        c = qgis.core.QgsProcessing.TypeVectorPolygon
        d = QtWidgets.QAction
        e = QtCore.QVariant.Int
    """
    assert rules_of(tmp_path, source, header="") == ["unscoped-enum", "unscoped-enum", "unscoped-enum",
                                                     "qtgui-class", "qvariant-type"]


def test_qgsfield_with_qvariant_is_one_finding(tmp_path):
    source = """
        from qgis.PyQt.QtCore import QVariant
        f = QgsField("id", QVariant.Int)
        g = QgsField("v", type=QVariant.Double)
    """
    assert rules_of(tmp_path, source) == ["qgsfield-type", "qgsfield-type"]


def test_exec_underscore_reference_fires(tmp_path):
    assert rules_of(tmp_path, "from qgis.PyQt.QtCore import QTimer\nQTimer.singleShot(0, dlg.exec_)\n") == ["exec_"]


# ------------------------------------------------------------------------------------------ and does not fire


def test_scoped_and_ordinary_forms_do_not_fire(tmp_path):
    source = """
        from qgis.PyQt import sip
        from qgis.PyQt.QtCore import QCoreApplication, QMetaType, Qt, QtMsgType
        from qgis.PyQt.QtGui import QAction, QActionGroup, QShortcut
        from qgis.PyQt.QtWidgets import QDialog

        a = Qt.AlignmentFlag.AlignLeft
        b = Qgis.MessageLevel.Warning
        c = QgsProcessing.SourceType.TypeVectorPolygon
        d = Qgis.ProcessingSourceType.VectorPolygon
        e = QgsApplication.processingRegistry()
        f = QgsProject.instance()
        g = Qgis.QGIS_VERSION_INT, Qgis.QGIS_VERSION, QgsProcessing.TEMPORARY_OUTPUT
        h = QgsProcessingContext.LayerDetails("name", QgsProject.instance(), "output")
        i = QgsProcessingContext.LayerDetails
        j = Qt.AlignmentFlag(0)
        k = QgsFeatureSink.Flag.FastInsert
        m = QMetaType.Type.Int
        n = getattr(QMetaType.Type, "Int")
        o = isinstance(n, (Qgis.MessageLevel, Qt.AlignmentFlag))
        p = QtMsgType.QtWarningMsg
        q = QgsField("x", QMetaType.Type.Double)
        r = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop
        s = QgsWkbTypes.Type.MultiPolygon
        t = QCoreApplication.translate("ctx", "text")
        u = QgsColorRampShader.ColorRampItem(0.0, None, "")
        dlg = QDialog()
        dlg.exec()


        def level_of(x: Qgis.MessageLevel) -> Qgis.MessageLevel:
            return x


        class QLocal:  # not a Qt class: not imported from qgis / PyQt
            Member = 1


        v = QLocal.Member
    """
    assert findings_of(tmp_path, source) == []


def test_file_without_qgis_import_is_skipped(tmp_path):
    source = "class Qt:\n    AlignLeft = 1\n\n\nx = Qt.AlignLeft\nobj.exec_()\n"
    assert findings_of(tmp_path, source, header="import os\n") == []


def test_vendor_folder_is_skipped(tmp_path):
    bad = "from PyQt5.QtCore import Qt\nx = Qt.AlignLeft\n"
    (tmp_path / "_vendor" / "lib").mkdir(parents=True)
    (tmp_path / "_vendor" / "lib" / "mod.py").write_text(bad)
    (tmp_path / "plugin.py").write_text(bad)
    found = check_qt6.scan([tmp_path])
    assert {Path(f.path).name for f in found} == {"plugin.py"}
    assert len(found) == 2


# ------------------------------------------------------------------------------------------ opt-out


def test_opt_out_with_reason(tmp_path):
    source = """
        from qgis.PyQt.QtCore import QVariant
        x = QVariant.Int  # qt6: ok (QGIS < 3.38 fallback, never reached on QGIS 4)
        y = QVariant.Int
    """
    found = findings_of(tmp_path, source)
    assert [(f.rule, f.line) for f in found] == [("qvariant-type", 5)]


def test_opt_out_without_reason_is_a_finding(tmp_path):
    source = """
        from qgis.PyQt.QtCore import Qt
        x = Qt.AlignLeft  # qt6: ok
        y = Qt.AlignLeft  # qt6: ok ()
    """
    rules = sorted(rules_of(tmp_path, source))
    assert rules == ["opt-out", "opt-out", "unscoped-enum", "unscoped-enum"]


def test_opt_out_inside_a_string_does_not_count(tmp_path):
    source = """
        from qgis.PyQt.QtCore import Qt
        x = (Qt.AlignLeft, "# qt6: ok (not a comment)")
    """
    assert rules_of(tmp_path, source) == ["unscoped-enum"]


# ------------------------------------------------------------------------------------------ command line


def test_cli_exit_codes(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "m.py").write_text("from qgis.PyQt.QtCore import Qt\n\nx = Qt.AlignLeft\n")
    assert check_qt6.main([str(bad)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].endswith("m.py:3: Qt.AlignLeft: unscoped enum member (PyQt6 knows only the "
                                             "scoped form): use Qt.AlignmentFlag.AlignLeft [unscoped-enum]"), out
    good = tmp_path / "good"
    good.mkdir()
    (good / "m.py").write_text("from qgis.PyQt.QtCore import Qt\n\nx = Qt.AlignmentFlag.AlignLeft\n")
    assert check_qt6.main([str(good)]) == 0
    assert check_qt6.main([str(tmp_path / "missing")]) == 2


# ------------------------------------------------------------------------------------------ the plugin


def test_plugin_is_qt6_ready():
    """Nothing in the plugin breaks under QGIS 4; a deliberate exception carries ``# qt6: ok (reason)``."""
    assert PLUGIN.is_dir(), PLUGIN
    findings = check_qt6.scan([PLUGIN])
    listing = "\n".join(f"{Path(f.path).relative_to(REPO)}:{f.line}: {f.message} [{f.rule}]" for f in findings)
    assert not findings, (f"{len(findings)} QGIS 4 / Qt6 problem(s) in qgis_plugin/hadcore_qgis "
                          f"(python scripts/check_qt6.py qgis_plugin/hadcore_qgis):\n{listing}")
