#!/usr/bin/env python3
"""Static check: Python code that breaks under QGIS 4 (Qt6 / PyQt6).

    python scripts/check_qt6.py [PATH ...]     (default: qgis_plugin/hadcore_qgis)

Prints one ``path:line: message`` per finding and exits 1 when there is any (0 when clean, 2 on a bad
argument). Needs the standard library only: nothing is imported from QGIS or Qt, the code is read as an AST.
In the spirit of QGIS's own ``scripts/pyqt5_to_pyqt6/pyqt5_to_pyqt6.py``, but a checker, not a rewriter,
and without introspecting a PyQt6 build: enum members are recognised by a naming rule (see
``_check_enum``) with an explicit allow-list for the CamelCase class attributes that are not enum members.

Rules (the id is in brackets at the end of each message):

* ``pyqt-import``    ``import PyQt5`` / ``from PyQt6.QtCore import ...`` / ``import sip``: only
                     ``qgis.PyQt`` (and ``from qgis.PyQt import sip``) work on both QGIS 3 and QGIS 4.
* ``exec_``          ``.exec_`` (``dlg.exec_()``, ``app.exec_``) is gone in PyQt6: use ``exec()``.
* ``qtgui-class``    ``QAction``, ``QActionGroup``, ``QShortcut`` (and QUndo*, QFileSystemModel) live in
                     QtGui in Qt6: import them from ``qgis.PyQt.QtGui``, not ``qgis.PyQt.QtWidgets``.
* ``unscoped-enum``  ``Qt.AlignLeft``, ``QgsProcessing.TypeVectorPolygon``, ``Qgis.Warning``...: PyQt6 only
                     knows ``Class.EnumName.Member``. The message suggests a spelling where it is known.
* ``qvariant-type``  ``QVariant.Int`` / ``QVariant.Type``: QVariant's type enum is gone in PyQt6; use
                     ``QMetaType.Type.<X>`` (or the project's compat helper).
* ``qgsfield-type``  ``QgsField(name, QVariant.X, ...)``: QGIS 4's QgsField takes a ``QMetaType.Type``.
* ``deprecated``     ``QgsMapLayerType`` (use ``Qgis.LayerType``), ``QgsWkbTypes.<Member>`` (use
                     ``Qgis.WkbType`` / ``Qgis.GeometryType``).
* ``removed``        Qt5-only API with no Qt6 counterpart under the same name: ``QRegExp``, ``QDesktopWidget``,
                     ``qApp``, ``QtWebKit``, ``qgis.PyQt.Qt``...
* ``opt-out``        a ``# qt6: ok`` comment without a reason.

Scope: ``*.py`` under the given paths, skipping ``_vendor``/``__pycache__`` folders and every file that
imports neither ``qgis`` nor ``PyQt5``/``PyQt6``/``sip`` (the vendored hadcore core never touches Qt).

Opt-out: a line ending in ``# qt6: ok (reason)`` is not reported; the reason is required (a bare
``# qt6: ok`` is itself a finding and suppresses nothing).
"""

from __future__ import annotations

import argparse
import ast
import io
import os
import re
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PATHS = [REPO / "qgis_plugin" / "hadcore_qgis"]
SKIP_DIRS = {"_vendor", "__pycache__"}


@dataclass(frozen=True, order=True)
class Finding:
    path: str
    line: int
    col: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message} [{self.rule}]"


# --------------------------------------------------------------------------------------------- tables

#: packages whose *submodules* hold Qt / QGIS classes (``from <pkg>.<mod> import QFoo``)
QT_PACKAGES = ("qgis.PyQt", "PyQt5", "PyQt6")
#: modules that hold QGIS classes directly
QGIS_CLASS_MODULES = ("qgis.core", "qgis.gui", "qgis.analysis", "qgis._3d", "qgis.server")
#: roots that must not be imported directly
FORBIDDEN_ROOTS = ("PyQt5", "PyQt6", "sip")

#: classes that moved from QtWidgets to QtGui in Qt6
MOVED_TO_QTGUI = {"QAction", "QActionGroup", "QShortcut", "QUndoCommand", "QUndoGroup", "QUndoStack",
                  "QFileSystemModel"}

#: names / modules removed in Qt6 (PyQt6 has none of them)
REMOVED_NAMES = {
    "QRegExp": "QRegExp is removed in Qt6: use QRegularExpression",
    "QRegExpValidator": "QRegExpValidator is removed in Qt6: use QRegularExpressionValidator",
    "QDesktopWidget": "QDesktopWidget is removed in Qt6: use QScreen (QApplication.primaryScreen(), widget.screen())",
    "QGLWidget": "QGLWidget is removed in Qt6: use QOpenGLWidget",
    "QMatrix": "QMatrix is removed in Qt6: use QTransform",
    "QStringRef": "QStringRef is removed in Qt6: use str",
    "QTextCodec": "QTextCodec is not in PyQt6 (Qt5Compat): use Python's codecs",
    "qApp": "qApp is removed in PyQt6: use QApplication.instance() / QgsApplication.instance()",
}
REMOVED_MODULES = {"QtWebKit", "QtWebKitWidgets", "QtXmlPatterns", "QtScript", "Qt"}

#: CamelCase class attributes that are *not* enum members: nested classes and the like, per class.
#: Calls (``QgsProcessingContext.LayerDetails(...)``), annotations and ``isinstance``'s second argument are
#: never reported anyway; this list is for the remaining bare references (``items: list = [...]``,
#: ``Details = QgsProcessingContext.LayerDetails``).
NOT_ENUM_MEMBERS: Dict[str, Set[str]] = {
    # QGIS nested classes / structs
    "QgsProcessingContext": {"LayerDetails"},
    "QgsColorRampShader": {"ColorRampItem"},
    "QgsFeatureRequest": {"OrderBy", "OrderByClause"},
    "QgsVectorLayer": {"LayerOptions"},
    "QgsRasterLayer": {"LayerOptions"},
    "QgsMeshLayer": {"LayerOptions"},
    "QgsPointCloudLayer": {"LayerOptions"},
    "QgsVectorTileLayer": {"LayerOptions"},
    "QgsDataProvider": {"ProviderOptions"},
    "QgsVectorFileWriter": {"SaveVectorOptions", "MetaData", "DriverDetails", "FilterFormatDetails", "Option",
                            "SetOption", "StringOption", "IntOption", "BoolOption", "HiddenOption"},
    "QgsExpressionContextScope": {"StaticVariable"},
    "QgsProcessingModelAlgorithm": {"VariableDefinition"},
    "QgsPointLocator": {"Match"},
    "QgsSnappingConfig": {"IndividualLayerSettings"},
    "QgsMapRendererJob": {"Error"},
    "QgsAbstractDatabaseProviderConnection": {"TableProperty", "QueryResult", "SqlVectorLayerOptions"},
    # Qt nested classes
    "QMetaObject": {"Connection"},
    "QTextEdit": {"ExtraSelection"},
    "QTextLayout": {"FormatRange"},
    "QPainter": {"PixmapFragment"},
    "QTextOption": {"Tab"},
    "QFormLayout": {"TakeRowResult"},
    "QCalendar": {"YearMonthDay"},
    "QTimeZone": {"OffsetData"},
    "QAbstractEventDispatcher": {"TimerInfo"},
}
#: enum *types* that are top-level names: ``QtMsgType.QtWarningMsg`` is already the scoped form
TOP_LEVEL_ENUMS = {"QtMsgType"}
#: Qt's lower-case enum members (Qt.GlobalColor): ``Qt.red`` -> ``Qt.GlobalColor.red``
QT_GLOBAL_COLORS = {"white", "black", "red", "darkRed", "green", "darkGreen", "blue", "darkBlue", "cyan",
                    "darkCyan", "magenta", "darkMagenta", "yellow", "darkYellow", "gray", "darkGray",
                    "lightGray", "transparent", "color0", "color1"}

#: QVariant type -> QMetaType.Type member, where the name differs
QMETATYPE_NAMES = {"Invalid": "UnknownType", "String": "QString", "StringList": "QStringList", "Date": "QDate",
                   "DateTime": "QDateTime", "Time": "QTime", "ByteArray": "QByteArray", "Map": "QVariantMap",
                   "List": "QVariantList", "Hash": "QVariantHash", "Char": "QChar", "Color": "QColor",
                   "Url": "QUrl", "Point": "QPoint", "PointF": "QPointF", "Rect": "QRect", "RectF": "QRectF",
                   "Size": "QSize", "SizeF": "QSizeF", "Icon": "QIcon", "Image": "QImage", "Font": "QFont"}

# Suggested spellings. Only a hint: the rule fires whether or not a suggestion is known. The QGIS 4 homes
# (``Qgis.*``) of the QGIS enums below appeared in QGIS 3.30-3.42; a plugin that still supports older QGIS
# needs a compat constant (try the new spelling, fall back to the old ``Class.Enum.Member``).
_QT_ENUM_BY_NAME = {  # Qt namespace: exact names
    "Horizontal": "Orientation", "Vertical": "Orientation", "Checked": "CheckState", "Unchecked": "CheckState",
    "PartiallyChecked": "CheckState", "UTC": "TimeSpec", "LocalTime": "TimeSpec", "ISODate": "DateFormat",
    "TextDate": "DateFormat", "RichText": "TextFormat", "PlainText": "TextFormat", "AutoText": "TextFormat",
    "NoBrush": "BrushStyle", "NoPen": "PenStyle", "WindowModal": "WindowModality",
    "ApplicationModal": "WindowModality", "NonModal": "WindowModality", "CaseSensitive": "CaseSensitivity",
    "CaseInsensitive": "CaseSensitivity", "Dialog": "WindowType", "Window": "WindowType", "Tool": "WindowType",
    "Popup": "WindowType", "Widget": "WindowType",
}
_QT_ENUM_BY_AFFIX = [  # Qt namespace: (prefix, suffix) -> enum, first match wins
    (("Key_", ""), "Key"), (("WA_", ""), "WidgetAttribute"), (("AA_", ""), "ApplicationAttribute"),
    (("Align", ""), "AlignmentFlag"), (("ItemIs", ""), "ItemFlag"), (("ItemNeverHasChildren", ""), "ItemFlag"),
    (("", "Role"), "ItemDataRole"), (("", "Cursor"), "CursorShape"), (("", "Modifier"), "KeyboardModifier"),
    (("", "Connection"), "ConnectionType"), (("", "Button"), "MouseButton"), (("", "Order"), "SortOrder"),
    (("Elide", ""), "TextElideMode"), (("ScrollBar", ""), "ScrollBarPolicy"), (("Match", ""), "MatchFlag"),
    (("", "Hint"), "WindowType"), (("", "Pattern"), "BrushStyle"), (("", "Line"), "PenStyle"),
    (("", "Cap"), "PenCapStyle"), (("", "Join"), "PenJoinStyle"), (("", "Focus"), "FocusPolicy"),
    (("", "ContextMenu"), "ContextMenuPolicy"), (("", "AspectRatio"), "AspectRatioMode"),
    (("", "Transformation"), "TransformationMode"), (("", "DockWidgetArea"), "DockWidgetArea"),
    (("", "ToolBarArea"), "ToolBarArea"), (("ToolButton", ""), "ToolButtonStyle"),
]
_QGIS_SPELLINGS = {  # (class, member) -> replacement
    ("QgsColorRampShader", "Interpolated"): "Qgis.ShaderInterpolationMethod.Linear",
    ("QgsColorRampShader", "Discrete"): "Qgis.ShaderInterpolationMethod.Discrete",
    ("QgsColorRampShader", "Exact"): "Qgis.ShaderInterpolationMethod.Exact",
    ("QgsColorRampShader", "Continuous"): "Qgis.ShaderClassificationMethod.Continuous",
    ("QgsColorRampShader", "EqualInterval"): "Qgis.ShaderClassificationMethod.EqualInterval",
    ("QgsColorRampShader", "Quantile"): "Qgis.ShaderClassificationMethod.Quantile",
    ("QgsRasterMinMaxOrigin", "MinMax"): "Qgis.RasterRangeLimit.MinimumMaximum",
    ("QgsRasterMinMaxOrigin", "StdDev"): "Qgis.RasterRangeLimit.StdDev",
    ("QgsRasterMinMaxOrigin", "CumulativeCut"): "Qgis.RasterRangeLimit.CumulativeCut",
    ("QgsRasterMinMaxOrigin", "WholeRaster"): "Qgis.RasterRangeExtent.WholeRaster",
    ("QgsRasterMinMaxOrigin", "CurrentCanvas"): "Qgis.RasterRangeExtent.FixedCanvas",
    ("QgsRasterMinMaxOrigin", "UpdatedCanvas"): "Qgis.RasterRangeExtent.UpdatedCanvas",
    ("QgsRasterMinMaxOrigin", "Exact"): "Qgis.RasterRangeAccuracy.Exact",
    ("QgsRasterMinMaxOrigin", "Estimated"): "Qgis.RasterRangeAccuracy.Estimated",
    ("QgsFeatureSink", "FastInsert"): "QgsFeatureSink.Flag.FastInsert",
    ("QgsFeatureSink", "RegeneratePrimaryKey"): "QgsFeatureSink.Flag.RegeneratePrimaryKey",
    ("QgsFeatureRequest", "GeometryNoCheck"): "Qgis.InvalidGeometryCheck.NoCheck",
    ("QgsFeatureRequest", "GeometrySkipInvalid"): "Qgis.InvalidGeometryCheck.SkipInvalid",
    ("QgsFeatureRequest", "GeometryAbortOnInvalid"): "Qgis.InvalidGeometryCheck.AbortOnInvalid",
    ("QgsFeatureRequest", "NoGeometry"): "Qgis.FeatureRequestFlag.NoGeometry",
    ("QgsFeatureRequest", "SubsetOfAttributes"): "Qgis.FeatureRequestFlag.SubsetOfAttributes",
    ("QgsFeatureRequest", "ExactIntersect"): "Qgis.FeatureRequestFlag.ExactIntersect",
    ("QgsProcessingParameterNumber", "Integer"): "Qgis.ProcessingNumberParameterType.Integer",
    ("QgsProcessingParameterNumber", "Double"): "Qgis.ProcessingNumberParameterType.Double",
    ("QgsProcessingParameterFile", "File"): "Qgis.ProcessingFileParameterBehavior.File",
    ("QgsProcessingParameterFile", "Folder"): "Qgis.ProcessingFileParameterBehavior.Folder",
    ("QgsRasterBandStats", "All"): "Qgis.RasterBandStatistic.All",
    ("QgsMapLayer", "VectorLayer"): "Qgis.LayerType.Vector",
    ("QgsMapLayer", "RasterLayer"): "Qgis.LayerType.Raster",
}
_QGIS_MESSAGE_LEVELS = {"Info", "Warning", "Critical", "Success", "NoLevel"}
_QGIS_DATA_TYPES = {"UnknownDataType", "Byte", "Int8", "UInt16", "Int16", "UInt32", "Int32", "Float32",
                    "Float64", "CInt16", "CInt32", "CFloat32", "CFloat64", "ARGB32", "ARGB32_Premultiplied"}
_WHOLE_CLASS_ENUM = {  # classes that (practically) hold one enum: every member goes there
    "QEvent": "QEvent.Type", "QMetaType": "QMetaType.Type", "QSizePolicy": "QSizePolicy.Policy",
    "QKeySequence": "QKeySequence.StandardKey",
}


def _suggest(cls: str, member: str) -> Optional[str]:
    """A replacement for the unscoped ``cls.member``, or None when not known."""
    if (cls, member) in _QGIS_SPELLINGS:
        return _QGIS_SPELLINGS[(cls, member)]
    if cls == "Qt":
        if member in QT_GLOBAL_COLORS:
            return f"Qt.GlobalColor.{member}"
        if member in _QT_ENUM_BY_NAME:
            return f"Qt.{_QT_ENUM_BY_NAME[member]}.{member}"
        for (prefix, suffix), enum in _QT_ENUM_BY_AFFIX:
            if member.startswith(prefix) and member.endswith(suffix):
                return f"Qt.{enum}.{member}"
        return None
    if cls == "Qgis":
        if member in _QGIS_MESSAGE_LEVELS:
            return f"Qgis.MessageLevel.{member}"
        if member in _QGIS_DATA_TYPES:
            return f"Qgis.DataType.{member}"
        return None
    if cls in _WHOLE_CLASS_ENUM:
        return f"{_WHOLE_CLASS_ENUM[cls]}.{member}"
    if cls == "QImage" and member.startswith("Format_"):
        return f"QImage.Format.{member}"
    if cls == "QPainter" and member.startswith("CompositionMode_"):
        return f"QPainter.CompositionMode.{member}"
    if cls == "QgsContrastEnhancement" and member.endswith(("MinimumMaximum", "Enhancement")):
        return f"QgsContrastEnhancement.ContrastEnhancementAlgorithm.{member}"
    if cls == "QgsProcessing" and member.startswith("Type"):
        return f"Qgis.ProcessingSourceType.{member[4:]}"
    if cls.startswith("QgsProcessingParameter") and member.startswith("Flag"):
        return f"Qgis.ProcessingParameterFlag.{member[4:]}"
    if cls.startswith("QgsProcessingAlgorithm") and member.startswith("Flag"):
        return f"Qgis.ProcessingAlgorithmFlag.{member[4:]}"
    if cls == "QgsUnitTypes":
        for prefix, enum in (("Render", "RenderUnit"), ("Distance", "DistanceUnit"), ("Area", "AreaUnit"),
                             ("Layout", "LayoutUnit")):
            if member.startswith(prefix):
                rest = member[len(prefix):]
                return f"Qgis.{enum}.{'Unknown' if rest == 'UnknownUnit' else rest}"
        return None
    if cls == "QgsWkbTypes":
        if member.endswith("Geometry"):
            return f"Qgis.GeometryType.{member[:-len('Geometry')] or member}"
        return f"Qgis.WkbType.{member}"
    if cls == "QgsPalLayerSettings" and member in {"AroundPoint", "OverPoint", "Line", "Curved", "Horizontal",
                                                   "Free", "OrderedPositionsAroundPoint", "PerimeterCurved",
                                                   "OutsidePolygons"}:
        return f"Qgis.LabelPlacement.{member}"
    return None


# --------------------------------------------------------------------------------------------- imports


def _is_qt_class_name(name: str) -> bool:
    return name == "Qgis" or (name.startswith("Q") and len(name) > 1 and name[1].isalpha())


class _Bindings:
    """What the names of one file refer to: Qt/QGIS classes and Qt/QGIS modules."""

    def __init__(self, tree: ast.AST):
        self.classes: Dict[str, str] = {}  # bound name -> class name
        self.modules: Dict[str, str] = {}  # bound name -> dotted module
        self.star = False
        self.imports_qt = False
        self.local: Set[str] = set()  # names the file defines itself (not Qt classes, even with a * import)
        for node in ast.walk(tree):
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                self.local.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                self.local.add(node.id)
            elif isinstance(node, ast.arg):
                self.local.add(node.arg)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    root = alias.name.split(".")[0]
                    if root in ("qgis",) + FORBIDDEN_ROOTS:
                        self.imports_qt = True
                        if alias.asname:
                            self.modules[alias.asname] = alias.name
                        else:
                            self.modules[root] = root
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                mod = node.module
                root = mod.split(".")[0]
                if root not in ("qgis",) + FORBIDDEN_ROOTS:
                    continue
                self.imports_qt = True
                holds_classes = mod in QGIS_CLASS_MODULES or any(mod.startswith(p + ".") for p in QT_PACKAGES)
                for alias in node.names:
                    if alias.name == "*":
                        self.star = self.star or holds_classes
                        continue
                    bound = alias.asname or alias.name
                    if holds_classes:
                        if _is_qt_class_name(alias.name):
                            self.classes[bound] = alias.name
                    else:  # from qgis.PyQt import QtCore / from qgis import core
                        self.modules[bound] = f"{mod}.{alias.name}"

    def _module_of(self, node: ast.AST) -> Optional[str]:
        """Dotted module a Name/Attribute chain refers to (``QtCore``, ``qgis.core``), if a Qt/QGIS one."""
        parts: List[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name) or node.id not in self.modules:
            return None
        return ".".join([self.modules[node.id]] + parts[::-1])

    def class_of(self, node: ast.AST) -> Optional[str]:
        """The Qt/QGIS class an expression names (``Qt``, ``QtCore.Qt``, ``qgis.core.Qgis``), or None."""
        if isinstance(node, ast.Name):
            if node.id in self.classes:
                return self.classes[node.id]
            if (self.star and _is_qt_class_name(node.id) and node.id not in self.modules
                    and node.id not in self.local):
                return node.id
            return None
        if isinstance(node, ast.Attribute) and _is_qt_class_name(node.attr):
            module = self._module_of(node.value)
            if module is not None and module not in QT_PACKAGES + ("qgis",):
                return node.attr  # QtCore.Qt, qgis.core.Qgis (but not qgis.PyQt.QtCore: a module)
        return None


# --------------------------------------------------------------------------------------------- the visitor

_OPT_OUT = re.compile(r"#\s*qt6:\s*ok\b(?P<rest>.*)$", re.IGNORECASE)
_REASON = re.compile(r"^\s*\(\s*[^)\s][^)]*\)")


def _opt_outs(source: str) -> Tuple[Set[int], List[int]]:
    """Lines with a valid ``# qt6: ok (reason)`` and lines with a reason-less one."""
    ok: Set[int] = set()
    bad: List[int] = []
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return ok, bad
    for tok in tokens:
        if tok.type != tokenize.COMMENT:
            continue
        m = _OPT_OUT.search(tok.string)
        if not m:
            continue
        if _REASON.match(m.group("rest")):
            ok.add(tok.start[0])
        else:
            bad.append(tok.start[0])
    return ok, bad


class _Checker(ast.NodeVisitor):
    def __init__(self, path: str, bindings: _Bindings):
        self.path = path
        self.b = bindings
        self.findings: List[Finding] = []
        self.parents: Dict[ast.AST, ast.AST] = {}
        self.skip: Set[int] = set()  # ids of nodes another rule already reported
        self.exempt: Set[int] = set()  # ids of nodes in annotation / isinstance position

    def add(self, node: ast.AST, rule: str, message: str) -> None:
        self.findings.append(Finding(self.path, getattr(node, "lineno", 1), getattr(node, "col_offset", 0),
                                     rule, message))

    def run(self, tree: ast.AST) -> List[Finding]:
        for parent in ast.walk(tree):
            for child in ast.iter_child_nodes(parent):
                self.parents[child] = parent
        for node in ast.walk(tree):
            for ann in _annotations(node):
                for sub in ast.walk(ann):
                    self.exempt.add(id(sub))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                # isinstance(x, Qgis.LayerType), getattr(QMetaType.Type, name): a class or an enum type
                if node.func.id in ("isinstance", "issubclass") and len(node.args) == 2:
                    self.exempt.add(id(node.args[1]))
                    if isinstance(node.args[1], ast.Tuple):
                        self.exempt.update(id(e) for e in node.args[1].elts)
                elif node.func.id in ("getattr", "hasattr") and node.args:
                    self.exempt.add(id(node.args[0]))
        self.visit(tree)
        return self.findings

    # -- imports
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            root = alias.name.split(".")[0]
            if root in FORBIDDEN_ROOTS:
                self.add(node, "pyqt-import", f"'import {alias.name}': import from qgis.PyQt instead"
                         + (" (from qgis.PyQt import sip)" if "sip" in alias.name.split(".") else ""))
            last = alias.name.split(".")[-1]
            if alias.name.startswith(("qgis.PyQt.", "PyQt5.", "PyQt6.")) and last in REMOVED_MODULES:
                self.add(node, "removed", f"module {alias.name} does not exist in PyQt6")
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        mod = node.module or ""
        root = mod.split(".")[0]
        if node.level == 0 and root in FORBIDDEN_ROOTS:
            target = "qgis.PyQt" + mod[len(root):] if root != "sip" else "qgis.PyQt import sip"
            self.add(node, "pyqt-import", f"'from {mod} import ...': use {target} (only qgis.PyQt works on "
                                          f"QGIS 3 and QGIS 4)")
        if node.level == 0 and mod.split(".")[-1] in REMOVED_MODULES and mod.startswith(QT_PACKAGES):
            self.add(node, "removed", f"module {mod} does not exist in PyQt6"
                     + (": import Qt from qgis.PyQt.QtCore" if mod.endswith(".Qt") else ""))
        for alias in node.names:
            line_node = alias if hasattr(alias, "lineno") else node
            if alias.name in MOVED_TO_QTGUI and mod.endswith("QtWidgets"):
                self.add(line_node, "qtgui-class", f"{alias.name} is in QtGui in Qt6: "
                                                   f"'from qgis.PyQt.QtGui import {alias.name}'")
            if alias.name in REMOVED_NAMES and root in ("qgis",) + FORBIDDEN_ROOTS:
                self.add(line_node, "removed", REMOVED_NAMES[alias.name])
            if alias.name == "QgsMapLayerType":
                self.add(line_node, "deprecated", "QgsMapLayerType is deprecated (gone in QGIS 4): use "
                                                  "Qgis.LayerType")
            if alias.name == "exec_":
                self.add(line_node, "exec_", "exec_ is gone in PyQt6: use exec")
        self.generic_visit(node)

    # -- calls
    def visit_Call(self, node: ast.Call) -> None:
        if self.b.class_of(node.func) == "QgsField":
            for arg in list(node.args[1:]) + [k.value for k in node.keywords]:
                if isinstance(arg, ast.Attribute) and self._qvariant_root(arg):
                    member = _first_member(arg)
                    target = f"QMetaType.Type.{QMETATYPE_NAMES.get(member, member)}" if member else "QMetaType.Type"
                    self.add(arg, "qgsfield-type", f"QgsField(..., {_dotted(arg)}): QGIS 4's QgsField takes a "
                                                   f"QMetaType.Type ({target}); QVariant types are gone in PyQt6")
                    for sub in ast.walk(arg):
                        self.skip.add(id(sub))
        self.generic_visit(node)

    # -- names
    def visit_Name(self, node: ast.Name) -> None:
        if node.id == "QgsMapLayerType" and isinstance(node.ctx, ast.Load) and id(node) not in self.skip:
            self.add(node, "deprecated", "QgsMapLayerType is deprecated (gone in QGIS 4): use Qgis.LayerType")
        self.generic_visit(node)

    # -- attributes
    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr == "exec_":
            self.add(node, "exec_", f"{_dotted(node) or '...'}(): exec_ is gone in PyQt6: use exec()")
        if node.attr in MOVED_TO_QTGUI:
            module = self.b._module_of(node.value)
            if module and module.endswith("QtWidgets"):
                self.add(node, "qtgui-class", f"{module}.{node.attr}: {node.attr} is in QtGui in Qt6")
        if node.attr in REMOVED_NAMES and self.b._module_of(node.value):
            self.add(node, "removed", REMOVED_NAMES[node.attr])
        if node.attr == "QgsMapLayerType" and self.b._module_of(node.value):
            self.add(node, "deprecated", "QgsMapLayerType is deprecated (gone in QGIS 4): use Qgis.LayerType")
        if (isinstance(node.value, ast.Name) and node.value.id == "QgsMapLayerType"
                and id(node.value) not in self.skip):
            member = node.attr[:-len("Layer")] if node.attr.endswith("Layer") else node.attr
            self.add(node, "deprecated", f"QgsMapLayerType.{node.attr}: QgsMapLayerType is deprecated (gone in "
                                         f"QGIS 4): use Qgis.LayerType.{member}")
            self.skip.update((id(node), id(node.value)))
        if id(node) not in self.skip:
            self._check_enum(node)
        self.generic_visit(node)

    def _qvariant_root(self, node: ast.Attribute) -> bool:
        while isinstance(node.value, ast.Attribute) and self.b.class_of(node.value) is None:
            node = node.value
        return self.b.class_of(node.value) == "QVariant"

    def _check_enum(self, node: ast.Attribute) -> None:
        """Report ``Class.Member`` where ``Member`` is (by the naming rule) an unscoped enum member.

        Rule: the value names a Qt/QGIS class (imported from qgis.core/gui/analysis, qgis.PyQt.*, PyQt5/6.*),
        ``Member`` starts with an upper-case letter (``Qt.red`` & co. are the lower-case exceptions) and is
        not an ALL_CAPS constant (``Qgis.QGIS_VERSION``, ``QgsProcessing.TEMPORARY_OUTPUT``). Not reported:
        ``Class.Enum.Member`` (the node is the value of another attribute access whose name starts
        upper-case: it is the enum scope), a call (``QgsProcessingContext.LayerDetails(...)``,
        ``Qt.AlignmentFlag(0)``: nested class or enum type), an annotation, ``isinstance``'s class argument,
        and the allow-list ``NOT_ENUM_MEMBERS``. Methods and signals are lower-case, hence never reported.
        """
        cls = self.b.class_of(node.value)
        if cls is None or cls == "QgsMapLayerType":
            return
        member = node.attr
        if cls == "QVariant":
            if member[:1].isupper() and member != member.upper():
                if member == "Type":
                    msg = "QVariant.Type is gone in PyQt6: use QMetaType.Type (or the project's compat helper)"
                else:
                    msg = (f"QVariant.{member}: QVariant types are gone in PyQt6: use QMetaType.Type."
                           f"{QMETATYPE_NAMES.get(member, member)} (or the project's compat helper)")
                self.add(node, "qvariant-type", msg)
            return
        if id(node) in self.exempt:
            return
        lower_enum = cls == "Qt" and member in QT_GLOBAL_COLORS
        if not lower_enum:
            if not member[:1].isupper() or member == member.upper():
                return
        if cls in TOP_LEVEL_ENUMS or member in NOT_ENUM_MEMBERS.get(cls, ()):
            return
        parent = self.parents.get(node)
        if isinstance(parent, ast.Attribute) and parent.value is node and parent.attr[:1].isupper():
            return  # Class.Enum.Member: this node is the scope
        if isinstance(parent, ast.Call) and parent.func is node:
            return  # nested class / enum type called
        hint = _suggest(cls, member)
        written = _dotted(node) or f"{cls}.{member}"
        if cls == "QgsWkbTypes":
            self.add(node, "deprecated", f"{written}: unscoped QgsWkbTypes member, deprecated since QGIS 3.30 "
                                         f"moved the enum to Qgis: use {hint}")
            return
        suggestion = f": use {hint}" if hint else f": use {cls}.<EnumName>.{member}"
        self.add(node, "unscoped-enum",
                 f"{written}: unscoped enum member (PyQt6 knows only the scoped form){suggestion}")


def _annotations(node: ast.AST) -> Iterable[ast.AST]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        if node.returns is not None:
            yield node.returns
        args = node.args
        for a in list(getattr(args, "posonlyargs", [])) + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
            if a is not None and a.annotation is not None:
                yield a.annotation
    elif isinstance(node, ast.AnnAssign):
        yield node.annotation


def _dotted(node: ast.AST) -> Optional[str]:
    parts: List[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(parts[::-1])
    return None


def _first_member(node: ast.Attribute) -> Optional[str]:
    """``QVariant.Int`` -> ``Int``; ``QVariant.Type.Int`` -> ``Int``."""
    name = node.attr
    return None if name == "Type" else name


# --------------------------------------------------------------------------------------------- driver


def _python_files(paths: Sequence[Union[str, os.PathLike]]) -> List[Path]:
    files: List[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            for f in sorted(p.rglob("*.py")):
                if not SKIP_DIRS.intersection(f.relative_to(p).parts[:-1]):
                    files.append(f)
        elif p.suffix == ".py" and not SKIP_DIRS.intersection(p.parts[:-1]):
            files.append(p)
        elif not p.exists():
            raise FileNotFoundError(str(p))
    return files


def scan_source(source: str, path: str = "<string>") -> List[Finding]:
    """Findings of one file's text (empty when it imports neither qgis nor PyQt5/PyQt6/sip)."""
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        return [Finding(path, exc.lineno or 1, 0, "syntax", f"cannot parse: {exc.msg}")]
    bindings = _Bindings(tree)
    if not bindings.imports_qt:
        return []
    findings = _Checker(path, bindings).run(tree)
    ok_lines, bad_lines = _opt_outs(source)
    findings = [f for f in findings if f.line not in ok_lines]
    findings += [Finding(path, line, 0, "opt-out", "'# qt6: ok' needs a reason: '# qt6: ok (why this is fine)'")
                 for line in bad_lines]
    unique = {(f.line, f.rule, f.message): f for f in sorted(findings, reverse=True)}  # keep the first column
    return sorted(unique.values())


def scan(paths: Sequence[Union[str, os.PathLike]]) -> List[Finding]:
    """Findings of every ``*.py`` under ``paths`` (files or folders), sorted by path and line."""
    findings: List[Finding] = []
    for f in _python_files(paths):
        findings += scan_source(f.read_text(encoding="utf-8"), str(f))
    return sorted(findings)


def _display(path: str) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return path


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="files or folders (default: qgis_plugin/hadcore_qgis)")
    args = parser.parse_args(argv)
    try:
        findings = scan(args.paths or DEFAULT_PATHS)
    except FileNotFoundError as exc:
        print(f"check_qt6: no such file or folder: {exc}", file=sys.stderr)
        return 2
    for f in findings:
        print(f"{_display(f.path)}:{f.line}: {f.message} [{f.rule}]")
    print(f"check_qt6: {len(findings)} finding(s)", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
