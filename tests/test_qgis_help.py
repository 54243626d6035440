"""The QGIS help panel reads as prose: detector docstrings (reStructuredText + LaTeX) become Qt rich text.

Runs without QGIS: ``qgis_plugin/hadcore_qgis/helptext.py`` and ``rst_html.py`` use the standard library only.
The QTextBrowser check at the end runs where PyQt5 is importable (skipped otherwise; the QGIS desktop tests
in ``tests_qgis`` see the real help panel).
"""

from __future__ import annotations

import ast
import html
import inspect
import os
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

import hadcore

REPO = Path(__file__).resolve().parents[1]
PLUGIN_DIR = REPO / "qgis_plugin"
if str(PLUGIN_DIR) not in sys.path:
    sys.path.insert(0, str(PLUGIN_DIR))

from hadcore_qgis import helptext  # noqa: E402
from hadcore_qgis.helptext import detector_help  # noqa: E402
from hadcore_qgis.rst_html import inline_to_html, latex_to_html, rst_to_html  # noqa: E402

DETECTORS = sorted(hadcore.list_detectors())
ALGORITHMS = PLUGIN_DIR / "hadcore_qgis" / "algorithms.py"
# what Qt's rich-text engine renders (a subset of HTML 4); the converter must not produce anything else
QT_TAGS = {"p", "b", "i", "code", "sub", "sup", "ul", "ol", "li", "dl", "dt", "dd", "pre", "h3", "h4", "a",
           "br", "hr", "span", "div"}
VOID_TAGS = {"br", "hr"}


def _algorithms_namespace():
    """``COMMON_NAMES`` and ``qgis_param_name`` of algorithms.py, without importing it (it imports qgis)."""
    tree = ast.parse(ALGORITHMS.read_text())
    ns = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "COMMON_NAMES" for t in node.targets):
            ns["COMMON_NAMES"] = ast.literal_eval(node.value)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "qgis_param_name":
            exec(compile(ast.Module(body=[node], type_ignores=[]), str(ALGORITHMS), "exec"), ns)
    assert "COMMON_NAMES" in ns and "qgis_param_name" in ns
    return ns


ALG = _algorithms_namespace()
qgis_param_name = ALG["qgis_param_name"]


class _Checker(HTMLParser):
    """Balanced tags from the Qt subset; collects the text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.text, self.code, self.links = [], [], [], [], []

    def handle_starttag(self, tag, attrs):
        if tag not in QT_TAGS:
            self.errors.append(f"tag <{tag}> outside Qt's rich text")
        if tag == "a":
            self.links.append(dict(attrs).get("href"))
        if tag not in VOID_TAGS:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        if tag not in VOID_TAGS:
            self.errors.append(f"self-closed <{tag}/>")

    def handle_endtag(self, tag):
        if tag in VOID_TAGS:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        # literal text (code, pre) may hold what the prose may not (``crop_size**2``)
        (self.code if {"code", "pre"} & set(self.stack) else self.text).append(data)


def check_html(fragment: str, with_code: bool = False):
    """(text, links) of an HTML fragment, the text outside code and pre unless ``with_code``; fails on
    unbalanced or non-Qt tags."""
    checker = _Checker()
    checker.feed(fragment)
    checker.close()
    assert not checker.errors, checker.errors
    assert not checker.stack, f"unclosed tags {checker.stack}"
    if with_code:
        return "".join(checker.text) + "\n" + "".join(checker.code), checker.links
    return "".join(checker.text), checker.links


def leftovers(text: str):
    """Raw reStructuredText / LaTeX that survived the conversion."""
    found = []
    for token in ("\\", ":math:", "``", ".. math", "{", "}", "`", "**", "$", ":func:", ":class:",
                  ":mod:", ":meth:"):
        if token in text:
            k = text.index(token)
            found.append(f"{token!r} in ...{text[max(0, k - 40):k + 40]!r}...")
    directive = re.search(r"\.\.\s+[\w:-]+::", text)  # (prose may say "0 .. 3")
    if directive:
        found.append(f"directive {directive.group()!r}")
    return found


# ============================================================================ LaTeX -> HTML

LATEX = [
    # Greek, scripts, transposes
    (r"\alpha + \beta", "α + β"),
    (r"\Sigma^{-1}", "Σ<sup>−1</sup>"),
    (r"\Gamma_y", "Γ<sub><i>y</i></sub>"),
    (r"\lambda\omega\Omega\Delta\Theta\Lambda\Phi\Psi", "λωΩΔΘΛΦΨ"),
    (r"x_i", "<i>x</i><sub><i>i</i></sub>"),
    (r"x_{ij}^{2}", "<i>x</i><sub><i>ij</i></sub><sup>2</sup>"),
    (r"X_s^T X_s", "<i>X</i><sub><i>s</i></sub>ᵀ <i>X</i><sub><i>s</i></sub>"),
    (r"A^\top", "<i>A</i>ᵀ"),
    (r"A^{\top} b", "<i>A</i>ᵀ <i>b</i>"),
    (r"(x - \mu)^T \Sigma^{-1} (x - \mu)", "(<i>x</i> − μ)ᵀ Σ<sup>−1</sup> (<i>x</i> − μ)"),
    (r"f'(x)", "<i>f</i>′(<i>x</i>)"),
    # fonts
    (r"\mathrm{diag}(x)", "diag(<i>x</i>)"),
    (r"\operatorname{tr}\Sigma", "tr Σ"),
    (r"\mathbf{x}", "<b>x</b>"),
    (r"\boldsymbol{\mu}", "<b>μ</b>"),
    (r"\text{s.t.}", "s.t."),
    (r"\mathcal{N}(0, 1)", "𝒩(0, 1)"),
    (r"\mathcal{X}", "𝒳"),
    (r"\mathbb{R}^{N \times B}", "ℝ<sup><i>N</i> × <i>B</i></sup>"),
    # fractions and roots
    (r"\frac{a}{b}", "<i>a</i>/<i>b</i>"),
    (r"\tfrac{1}{L}", "1/<i>L</i>"),
    (r"\dfrac{a + b}{2}", "(<i>a</i> + <i>b</i>)/2"),
    (r"\frac{\tau}{2}", "τ/2"),
    (r"\tfrac{\operatorname{tr}\Sigma_r}{B}", "(tr Σ<sub><i>r</i></sub>)/<i>B</i>"),
    (r"\sqrt{x}", "√(<i>x</i>)"),
    (r"\sqrt[3]{x}", "<sup>3</sup>√(<i>x</i>)"),
    # delimiters and sizes
    (r"\left(a\right)", "(<i>a</i>)"),
    (r"\left. x \right|", "<i>x</i> |"),
    (r"\big(Z\big)", "(<i>Z</i>)"),
    (r"\|x\|_2", "‖<i>x</i>‖<sub>2</sub>"),
    (r"\{1, \dots, n\}", "{1, …, <i>n</i>}"),
    (r"\lbrace a \rbrace", "{ <i>a</i> }"),
    (r"\langle x, y \rangle", "⟨ <i>x</i>, <i>y</i> ⟩"),
    # operators, relations, symbols
    (r"a \cdot b \times c", "<i>a</i> · <i>b</i> × <i>c</i>"),
    (r"a \le b \ge c \ne d \approx e", "<i>a</i> ≤ <i>b</i> ≥ <i>c</i> ≠ <i>d</i> ≈ <i>e</i>"),
    (r"x \in S", "<i>x</i> ∈ <i>S</i>"),
    (r"\sum_i \alpha_i", "∑<sub><i>i</i></sub> α<sub><i>i</i></sub>"),
    (r"\sum_{p,b} x", "∑<sub><i>p</i>,<i>b</i></sub> <i>x</i>"),
    (r"\prod_k p_k", "∏<sub><i>k</i></sub> <i>p</i><sub><i>k</i></sub>"),
    (r"\hat{x}", "<i>x̂</i>"),
    (r"\hat\alpha", "α̂"),
    (r"\hat X_k", "<i>X̂</i><sub><i>k</i></sub>"),
    (r"\bar{x}", "<i>x̄</i>"),
    (r"\tilde{x}", "<i>x̃</i>"),
    (r"\overline{ab}", '<span style="text-decoration: overline"><i>ab</i></span>'),
    (r"\infty", "∞"),
    (r"\arg\min_\alpha f", "arg min<sub>α</sub> <i>f</i>"),
    (r"\lambda_{\max}", "λ<sub>max</sub>"),
    (r"\min_x \max_y", "min<sub><i>x</i></sub> max<sub><i>y</i></sub>"),
    (r"\exp(-x)", "exp(−<i>x</i>)"),
    (r"\log x", "log <i>x</i>"),
    (r"a\quad b", "<i>a</i>&nbsp;&nbsp; <i>b</i>"),
    (r"a \qquad b", "<i>a</i> &nbsp;&nbsp;&nbsp;&nbsp; <i>b</i>"),
    (r"\rho\,\sigma\;\tau\!\mu", "ρ σ τμ"),
    (r"a \odot b \otimes c", "<i>a</i> ⊙ <i>b</i> ⊗ <i>c</i>"),
    (r"\partial L/\partial x", "∂<i>L</i>/∂<i>x</i>"),
    (r"\nabla f", "∇<i>f</i>"),
    (r"\{x \mid x > 0\}", "{<i>x</i> | <i>x</i> &gt; 0}"),
    (r"a < b", "<i>a</i> &lt; <i>b</i>"),
    (r"x_1, \ldots, x_n", "<i>x</i><sub>1</sub>, …, <i>x</i><sub><i>n</i></sub>"),
    (r"f: X \to Y, x \mapsto y", "<i>f</i>: <i>X</i> → <i>Y</i>, <i>x</i> ↦ <i>y</i>"),
    (r"x \sim \mathcal{N}", "<i>x</i> ∼ 𝒩"),
    (r"y \propto x", "<i>y</i> ∝ <i>x</i>"),
    (r"f \circ g", "<i>f</i> ∘ <i>g</i>"),
    (r"a \star b \ast c", "<i>a</i> ⋆ <i>b</i> ∗ <i>c</i>"),
    (r"\forall x \exists y", "∀<i>x</i> ∃<i>y</i>"),
    (r"\emptyset", "∅"),
    (r"\ell_{2,1}", "ℓ<sub>2,1</sub>"),
    (r"\|\cdot\|_{r,*}", "‖·‖<sub><i>r</i>,*</sub>"),
    (r"\not= \not\in", "≠ ∉"),
    (r"2^{-E[h(x)]/c(256)}", "2<sup>−<i>E</i>[<i>h</i>(<i>x</i>)]/<i>c</i>(256)</sup>"),
    (r"a \\ b", "<i>a</i> <br> <i>b</i>"),
    # unknown commands lose the backslash, nothing else
    (r"\foo x", "foo <i>x</i>"),
    (r"\mathfoo{A}", "mathfoo<i>A</i>"),
    # the examples of the docstrings
    (r"\left(\Sigma_r + \rho\,\tfrac{\operatorname{tr}\Sigma_r}{B} I\right)^{-1}",
     "(Σ<sub><i>r</i></sub> + ρ (tr Σ<sub><i>r</i></sub>)/<i>B</i> <i>I</i>)<sup>−1</sup>"),
    (r"\gamma = 1 / (\mathrm{width}\cdot\mathrm{median}\|x_i - x_j\|^2)",
     "γ = 1 / (width·median‖<i>x</i><sub><i>i</i></sub> − <i>x</i><sub><i>j</i></sub>‖<sup>2</sup>)"),
    (r"r_{step} = 0.5 + 0.5\,t/T \in [0.5, 1]",
     "<i>r</i><sub><i>step</i></sub> = 0.5 + 0.5 <i>t</i>/<i>T</i> ∈ [0.5, 1]"),
    (r"\min_{S, E} \|S\|_* + \beta\|S\|_1 \quad \text{s.t.}\quad X = DS + E",
     "min<sub><i>S</i>, <i>E</i></sub> ‖<i>S</i>‖<sub>*</sub> + β‖<i>S</i>‖<sub>1</sub> &nbsp;&nbsp; s.t.&nbsp;&nbsp; "
     "<i>X</i> = <i>DS</i> + <i>E</i>"),
]


@pytest.mark.parametrize("tex, expected", LATEX, ids=[t for t, _ in LATEX])
def test_latex_to_html(tex, expected):
    out = latex_to_html(tex)
    assert out == expected
    text, _ = check_html(out)
    assert "\\" not in text and "{" not in text.replace("{", "", tex.count("\\{") + tex.count("\\lbrace"))


def test_latex_unknown_and_malformed_input_never_leaves_a_backslash():
    for tex in [r"\unknowncommand", r"x^", r"\frac{a}", r"{{a}", r"a}}", r"\\", "\\", r"\hat", r"\sqrt[",
                r"\left", r"\begin{aligned} a &= b \\ c &= d \end{aligned}", r"\text{a \% b}", r"50\%",
                r"\mathcal{}", r"\operatorname*{arg\,min}_x"]:
        out = latex_to_html(tex)
        text, _ = check_html(out)
        assert "\\" not in out and "{" not in text.replace("{", "", tex.count("\\{")), (tex, out)
    assert latex_to_html(r"\begin{aligned} a &= b \\ c &= d \end{aligned}") == \
        "<i>a</i> = <i>b</i> <br> <i>c</i> = <i>d</i>"
    assert latex_to_html(r"\operatorname*{arg\,min}_x") == "arg min<sub><i>x</i></sub>"


# ============================================================================ reStructuredText inline

INLINE = [
    ("``code``", "<code>code</code>"),
    ("a ``x < y`` b", "a <code>x &lt; y</code> b"),
    ("*emph*", "<i>emph</i>"),
    ("**strong**", "<b>strong</b>"),
    ("**Scaling:** three passes", "<b>Scaling:</b> three passes"),
    ("`name`", "<code>name</code>"),
    (":math:`\\alpha_i`", "α<sub><i>i</i></sub>"),
    ("the pixel :math:`y` (B,)", "the pixel <i>y</i> (B,)"),
    (":func:`spatial_information_map`", "<code>spatial_information_map</code>"),
    (":class:`hadcore.stats.PixelSample`", "<code>PixelSample</code>"),
    (":class:`~hadcore.stats.Moments`", "<code>Moments</code>"),
    (":meth:`hadcore.params.Param.coerce`", "<code>coerce</code>"),
    (":meth:`train`", "<code>train</code>"),
    (":mod:`hadcore.windows`", "<code>hadcore.windows</code>"),
    (":mod:`~hadcore.windows`", "<code>windows</code>"),
    (":data:`PARAM_TYPES`", "<code>PARAM_TYPES</code>"),
    (":py:func:`hadcore.io.open_scene`", "<code>open_scene</code>"),
    (":func:`the reader <hadcore.io.open_scene>`", "<code>the reader</code>"),
    (":ref:`detector table <detectors>`", "detector table"),
    (":sub:`2`", "<sub>2</sub>"),
    ("`hadcore <https://github.com/hadcore/hadcore>`_",
     '<a href="https://github.com/hadcore/hadcore">hadcore</a>'),
    ("see https://example.org/a_b.", 'see <a href="https://example.org/a_b">https://example.org/a_b</a>.'),
    # not markup: stars inside words, around spaces, in formulas
    ("N*B entries", "N*B entries"),
    ("a * b * c", "a * b * c"),
    ("2*x*y", "2*x*y"),
    ("(*)", "(*)"),
    ("``(tile + outer) * B^2 * 8`` bytes", "<code>(tile + outer) * B^2 * 8</code> bytes"),
    ("``crops * crop_size**2`` pixels", "<code>crops * crop_size**2</code> pixels"),
    ("escaped \\*star\\*", "escaped *star*"),
    ("Reed & Yu <1990>", "Reed &amp; Yu &lt;1990&gt;"),
    ("(``detect`` in memory, :class:`hadcore.stats.PixelSample`; *approximate*)",
     "(<code>detect</code> in memory, <code>PixelSample</code>; <i>approximate</i>)"),
]


@pytest.mark.parametrize("rst, expected", INLINE, ids=[r for r, _ in INLINE])
def test_inline_to_html(rst, expected):
    assert inline_to_html(rst) == expected
    check_html(expected)


# ============================================================================ reStructuredText blocks

def test_paragraphs_are_joined_and_separated():
    assert rst_to_html("One line\nand its continuation.\n\nSecond paragraph.") == \
        "<p>One line and its continuation.</p>\n<p>Second paragraph.</p>"


def test_docstring_indentation_is_removed():
    doc = "Title line.\n\n    Body line one\n    body line two.\n    "
    assert rst_to_html(doc) == "<p>Title line.</p>\n<p>Body line one body line two.</p>"


def test_bullet_list_after_a_choices_paragraph():
    doc = """Choices where the paper is silent:

- ``lam`` is dimensionless (both terms scale
  with the data);
- *Scaling.* per band.

Scaling: local."""
    assert rst_to_html(doc) == (
        "<p>Choices where the paper is silent:</p>\n"
        "<ul><li><code>lam</code> is dimensionless (both terms scale with the data);</li>"
        "<li><i>Scaling.</i> per band.</li></ul>\n"
        "<p>Scaling: local.</p>")


def test_list_right_after_a_colon_line_and_star_bullets():
    doc = "Choices:\n* one\n* two"
    assert rst_to_html(doc) == "<p>Choices:</p>\n<ul><li>one</li><li>two</li></ul>"


def test_a_dash_inside_a_paragraph_is_not_a_list():
    doc = "the value\n- 1 of the range"
    assert rst_to_html(doc) == "<p>the value - 1 of the range</p>"


def test_numbered_list_with_continuations_and_blank_lines():
    doc = """Pipeline:

1. dimension reduction: the first ``n`` principal
   components (Sec. II-A);
2. attribute filtering, :math:`d_i = f_i - \\gamma f_i`;

3. edge-preserving filtering (Gastal & Oliveira
   2011) with ``sigma_s``."""
    assert rst_to_html(doc) == (
        "<p>Pipeline:</p>\n"
        "<ol><li>dimension reduction: the first <code>n</code> principal components (Sec. II-A);</li>"
        "<li>attribute filtering, <i>d</i><sub><i>i</i></sub> = <i>f</i><sub><i>i</i></sub> − γ"
        "<i>f</i><sub><i>i</i></sub>;</li>"
        "<li>edge-preserving filtering (Gastal &amp; Oliveira 2011) with <code>sigma_s</code>.</li></ol>")


def test_numbered_list_start_and_parenthesised_markers():
    assert rst_to_html("3. three\n4. four") == '<ol start="3"><li>three</li><li>four</li></ol>'
    assert rst_to_html("(1) one\n(2) two") == "<ol><li>one</li><li>two</li></ol>"
    assert rst_to_html("#. one\n#. two") == "<ol><li>one</li><li>two</li></ol>"


def test_nested_list_and_multi_paragraph_item():
    doc = """- outer one

  - inner a
  - inner b

- outer two

  second paragraph of two"""
    assert rst_to_html(doc) == (
        "<ul><li><p>outer one</p>\n<ul><li>inner a</li><li>inner b</li></ul></li>"
        "<li><p>outer two</p>\n<p>second paragraph of two</p></li></ul>")


def test_math_directive_forms():
    doc = """scored by

.. math:: \\delta(x) = (x - \\mu)^T \\Sigma^{-1}
          (x - \\mu)

with the mean.

.. math::

    a = b

    c = d
"""
    assert rst_to_html(doc) == (
        "<p>scored by</p>\n"
        '<p align="center">δ(<i>x</i>) = (<i>x</i> − μ)ᵀ Σ<sup>−1</sup> (<i>x</i> − μ)</p>\n'
        "<p>with the mean.</p>\n"
        '<p align="center"><i>a</i> = <i>b</i></p>\n'
        '<p align="center"><i>c</i> = <i>d</i></p>')


def test_literal_blocks():
    rst = "Run this::\n\n    hadcore detect rx a.tif\n      --scale\n\nDone."
    assert rst_to_html(rst, docstring=False) == (
        "<p>Run this:</p>\n<pre>hadcore detect rx a.tif\n  --scale</pre>\n<p>Done.</p>")
    assert rst_to_html("Run this: ::\n\n    x < 1", docstring=False) == "<p>Run this:</p>\n<pre>x &lt; 1</pre>"
    # as a docstring, the first line is flush and the others are dedented together
    assert rst_to_html("Summary.\n\n    Run this::\n\n        x < 1\n    ") == \
        "<p>Summary.</p>\n<p>Run this:</p>\n<pre>x &lt; 1</pre>"
    assert rst_to_html("::\n\n    raw", docstring=False) == "<pre>raw</pre>"
    assert rst_to_html(".. code-block:: python\n\n    import hadcore", docstring=False) == "<pre>import hadcore</pre>"
    assert rst_to_html(">>> 1 + 1\n2") == "<pre>&gt;&gt;&gt; 1 + 1\n2</pre>"


def test_directives_comments_titles_fields_definitions():
    assert rst_to_html(".. note:: Slow on CPU.") == "<p><b>Note:</b> Slow on CPU.</p>"
    assert rst_to_html(".. warning::\n\n   Needs *torch*.", docstring=False) == \
        "<p><b>Warning:</b> Needs <i>torch</i>.</p>"
    assert rst_to_html(".. versionadded:: 0.3\n\n   the PRODUCT input", docstring=False) == \
        "<p><i>New in version 0.3.</i> the PRODUCT input</p>"
    assert rst_to_html(".. a comment\n   over two lines\n\n.. _target:\n\nText.") == "<p>Text.</p>"
    assert rst_to_html(".. image:: x.png\n\nText.") == "<p>Text.</p>"
    assert rst_to_html("Notes\n-----\n\nText.") == "<h4>Notes</h4>\n<p>Text.</p>"
    assert rst_to_html(":Returns: the scores\n:Raises: nothing") == \
        "<p><b>Returns:</b> the scores</p>\n<p><b>Raises:</b> nothing</p>"
    assert rst_to_html("ridge : float\n    Diagonal loading.", docstring=False) == \
        "<dl><dt><b>ridge</b> : <i>float</i></dt><dd>Diagonal loading.</dd></dl>"
    assert rst_to_html("Text [1]_.\n\n.. [1] Reed and Yu, 1990.") == \
        "<p>Text [1].</p>\n<p>[1] Reed and Yu, 1990.</p>"


def test_empty_and_plain_input():
    assert rst_to_html("") == ""
    assert rst_to_html(None) == ""
    assert rst_to_html("Plain text with 2 x 3 pixels, a -> b.") == "<p>Plain text with 2 x 3 pixels, a -&gt; b.</p>"


# ============================================================================ every registry detector

def _math_sources(doc: str):
    """Every LaTeX fragment of a docstring: :math: roles and .. math:: blocks."""
    text = inspect.cleandoc(doc)
    found = [m.group(1) for m in re.finditer(r":math:`((?:[^`\\]|\\.)+)`", " ".join(text.split()))]
    lines = text.split("\n")
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)\.\. math::\s*(.*)$", line)
        if m:
            block = [m.group(2)]
            for nxt in lines[i + 1:]:
                if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= len(m.group(1)):
                    break
                block.append(nxt)
            found.append(" ".join(block))
    return found


@pytest.mark.parametrize("name", DETECTORS)
def test_every_docstring_formula_converts_cleanly(name):
    cls = hadcore.get_detector_class(name)
    for tex in _math_sources(cls.__doc__ or ""):
        out = latex_to_html(tex)
        text, _ = check_html(out)
        bad = [c for c in "\\{}^_$" if c in text]
        assert not bad, f"{name}: {tex!r} -> {out!r} keeps {bad}"


@pytest.mark.parametrize("name", DETECTORS)
def test_detector_help_reads_as_prose(name):
    cls = hadcore.get_detector_class(name)
    out = detector_help(cls, qgis_param_name)
    assert "\\" not in out
    text, links = check_html(out)
    assert not leftovers(text), f"{name}: " + "; ".join(leftovers(text))
    everything, _ = check_html(out, with_code=True)
    assert ":math:" not in everything and "``" not in everything and ".. math" not in everything
    text = everything
    assert "<p><b>" in out and "<h3>Detector parameters</h3>" in out
    # the docstring is there, converted: its first line and every paragraph's opening words
    doc = inspect.cleandoc(cls.__doc__)
    assert " ".join(doc.split("\n", 1)[0].split()) in text
    # each parameter under its QGIS name, with its help and default
    for p in cls.params:
        qn = qgis_param_name(p.name)
        assert f"<b>{qn}</b> (<code>{p.name}</code>)" in out, qn
        assert html.unescape(inline_to_html(p.help.rstrip("."))).split("<")[0][:40] in html.unescape(out)
        assert ("On or off" if p.type == "bool" else p.describe_range()[1:]) in text
    # the parameters every detector algorithm has (algorithms.py), MEM_LIMIT included
    for common in [n for n in ALG["COMMON_NAMES"] if n != "PRODUCT"] + ["PRODUCT", "MEM_LIMIT"]:
        assert f"<b>{common}</b>" in out, common
    for words in ("EMIT", ".nc", "PRISMA", ".he5", "EnMAP", "METADATA.XML", "auto", "none", "1-based"):
        assert words in text
    assert cls.reference in text
    assert helptext.docs_url(name) in links


def test_help_matches_the_previous_content():
    """What the escaped-docstring help said is still said: summary, parameters, common parameters."""
    cls = hadcore.get_detector_class("lrx")
    out = detector_help(cls, qgis_param_name)
    check_html(out)
    text = html.unescape(re.sub(r"<[^>]+>", "", out))
    for words in (cls.summary, "Local RX: Mahalanobis distance", "halo of outer // 2 pixels", "Common parameters",
                  "percentile:P | value:X | top:N | otsu | fpr:R", "Reference", "INNER", "RIDGE",
                  "default 11", "Odd integer in [1, 101]"):
        assert words in text, words


def test_docs_links_follow_the_docs_folder():
    pages = {n for n in DETECTORS if (REPO / "docs" / f"{n}.md").exists()}
    assert set(helptext.DETECTOR_PAGES) == pages
    for name in DETECTORS:
        url = helptext.docs_url(name)
        assert url.startswith(helptext.DOCS_BASE_URL)
        rel = url[len(helptext.DOCS_BASE_URL):]
        path, _, anchor = rel.partition("#")
        assert (REPO / path).exists(), url
        if anchor:
            headings = [re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-")
                        for h in re.findall(r"^#+\s+(.*)$", (REPO / path).read_text(), re.M)]
            assert anchor in headings, url
        assert rel == (f"docs/{name}.md" if name in pages else "README.md#detectors")
    assert helptext.DOCS_BASE_URL == "https://github.com/hadcore/hadcore/blob/main/"


def test_reference_identifiers_are_links():
    crd = detector_help(hadcore.get_detector_class("crd"), qgis_param_name)
    assert '<a href="https://doi.org/10.1109/TGRS.2014.2343955">doi:10.1109/TGRS.2014.2343955</a>' in crd
    stad = detector_help(hadcore.get_detector_class("stad"), qgis_param_name)
    assert '<a href="https://arxiv.org/abs/2401.01093">arXiv:2401.01093</a>' in stad


def test_plugin_help_modules_need_only_the_standard_library():
    allowed = {"__future__", "html", "inspect", "re", "textwrap", "unicodedata", "typing"}
    for module in ("helptext.py", "rst_html.py"):
        tree = ast.parse((PLUGIN_DIR / "hadcore_qgis" / module).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [] if node.level else [node.module.split(".")[0]]
            else:
                continue
            assert set(names) <= allowed, (module, names)


# ============================================================================ Qt's rich-text engine

def test_help_renders_in_a_qtextbrowser():
    pytest.importorskip("PyQt5.QtWidgets")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt5.QtWidgets import QApplication, QTextBrowser

    app = QApplication.instance() or QApplication([])
    browser = QTextBrowser()
    for name in DETECTORS:
        cls = hadcore.get_detector_class(name)
        browser.setHtml(detector_help(cls, qgis_param_name))
        plain = browser.toPlainText()
        assert "Detector parameters" in plain and "Common parameters" in plain
        assert not re.search(r"</?(p|b|i|sub|sup|code|li|ul)>", plain), name
        # (the plain text includes code, which may hold "**": only what no code here holds)
        assert not [t for t in ("\\", ":math:", "``", ".. math", "{", "}", "&lt;", "&amp;") if t in plain], name
        for p in cls.params:
            assert qgis_param_name(p.name) in plain
    del app
