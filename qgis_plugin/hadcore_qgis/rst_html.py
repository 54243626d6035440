"""Docstring reStructuredText and LaTeX math -> the HTML that QGIS's help panel shows.

The help panel of a Processing algorithm is a ``QTextBrowser``: a subset of HTML 4 (``p``, ``b``, ``i``,
``code``, ``sub``, ``sup``, ``ul``/``ol``/``li``, ``dl``, ``pre``, ``h3``/``h4``, ``a``, ``br``), no CSS layout, no
MathJax. A detector's docstring is the one description of its method, so the help is generated from it:

- :func:`rst_to_html` converts the block structure (paragraphs, bullet and numbered lists, definition and
  field lists, section titles, literal blocks, ``.. math::`` and admonition directives) and, through
  :func:`inline_to_html`, the inline markup (double back-quotes, emphasis, strong, roles such as
  ``:math:``, ``:func:``, ``:class:``, hyperlinks);
- :func:`latex_to_html` turns the LaTeX of ``:math:`` roles and ``.. math::`` blocks into Unicode and
  ``sub``/``sup``: Greek letters, operators and relations as their Unicode symbols, fractions as ``a/b``,
  accents as combining marks, ``\\left``/``\\right`` and sizes dropped, unknown commands written as their
  name without the backslash.

Pure Python (standard library only, no docutils): QGIS's Python may not have docutils, and the plugin must
import with the standard library and numpy alone. The converter covers the reStructuredText that
docstrings use, not the whole language; what it does not know it writes as plain (escaped) text.
"""

from __future__ import annotations

import html
import inspect
import re
import textwrap
import unicodedata
from typing import List, Optional

__all__ = ["rst_to_html", "inline_to_html", "latex_to_html"]


# =====================================================================================================
# LaTeX math
# =====================================================================================================

_GREEK = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ϵ", "varepsilon": "ε", "zeta": "ζ",
    "eta": "η", "theta": "θ", "vartheta": "ϑ", "iota": "ι", "kappa": "κ", "varkappa": "ϰ", "lambda": "λ",
    "mu": "μ", "nu": "ν", "xi": "ξ", "omicron": "ο", "pi": "π", "varpi": "ϖ", "rho": "ρ", "varrho": "ϱ",
    "sigma": "σ", "varsigma": "ς", "tau": "τ", "upsilon": "υ", "phi": "ϕ", "varphi": "φ", "chi": "χ",
    "psi": "ψ", "omega": "ω", "digamma": "ϝ",
    "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Xi": "Ξ", "Pi": "Π", "Sigma": "Σ",
    "Upsilon": "Υ", "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω",
    "varGamma": "Γ", "varDelta": "Δ", "varTheta": "Θ", "varLambda": "Λ", "varXi": "Ξ", "varPi": "Π",
    "varSigma": "Σ", "varUpsilon": "Υ", "varPhi": "Φ", "varPsi": "Ψ", "varOmega": "Ω",
}

# command -> (html, kind); kinds: "ord" (symbol), "bin" (binary operator), "rel" (relation),
# "open" / "close" (delimiters), "punct", "op" (large operator or named function: a space before a letter)
_SYMBOLS = {
    # binary operators
    "cdot": ("·", "bin"), "times": ("×", "bin"), "div": ("÷", "bin"), "pm": ("±", "bin"), "mp": ("∓", "bin"),
    "ast": ("∗", "bin"), "star": ("⋆", "bin"), "circ": ("∘", "bin"), "bullet": ("•", "bin"),
    "odot": ("⊙", "bin"), "otimes": ("⊗", "bin"), "oplus": ("⊕", "bin"), "ominus": ("⊖", "bin"),
    "oslash": ("⊘", "bin"), "cap": ("∩", "bin"), "cup": ("∪", "bin"), "setminus": ("∖", "bin"),
    "wedge": ("∧", "bin"), "land": ("∧", "bin"), "vee": ("∨", "bin"), "lor": ("∨", "bin"),
    "sqcup": ("⊔", "bin"), "sqcap": ("⊓", "bin"), "uplus": ("⊎", "bin"), "dagger": ("†", "bin"),
    "ddagger": ("‡", "bin"), "amalg": ("⨿", "bin"), "diamond": ("⋄", "bin"), "bigtriangleup": ("△", "bin"),
    # relations and arrows
    "le": ("≤", "rel"), "leq": ("≤", "rel"), "leqslant": ("≤", "rel"), "ge": ("≥", "rel"),
    "geq": ("≥", "rel"), "geqslant": ("≥", "rel"), "ne": ("≠", "rel"), "neq": ("≠", "rel"),
    "approx": ("≈", "rel"), "simeq": ("≃", "rel"), "cong": ("≅", "rel"), "equiv": ("≡", "rel"),
    "sim": ("∼", "rel"), "propto": ("∝", "rel"), "ll": ("≪", "rel"), "gg": ("≫", "rel"),
    "in": ("∈", "rel"), "notin": ("∉", "rel"), "ni": ("∋", "rel"), "subset": ("⊂", "rel"),
    "subseteq": ("⊆", "rel"), "supset": ("⊃", "rel"), "supseteq": ("⊇", "rel"), "perp": ("⊥", "rel"),
    "parallel": ("∥", "rel"), "mid": ("|", "rel"), "nmid": ("∤", "rel"), "vdash": ("⊢", "rel"),
    "models": ("⊨", "rel"), "coloneqq": ("≔", "rel"), "triangleq": ("≜", "rel"), "doteq": ("≐", "rel"),
    "prec": ("≺", "rel"), "succ": ("≻", "rel"), "preceq": ("⪯", "rel"), "succeq": ("⪰", "rel"),
    "to": ("→", "rel"), "rightarrow": ("→", "rel"), "gets": ("←", "rel"), "leftarrow": ("←", "rel"),
    "mapsto": ("↦", "rel"), "Rightarrow": ("⇒", "rel"), "Leftarrow": ("⇐", "rel"),
    "Leftrightarrow": ("⇔", "rel"), "leftrightarrow": ("↔", "rel"), "implies": ("⟹", "rel"),
    "iff": ("⟺", "rel"), "longrightarrow": ("⟶", "rel"), "longmapsto": ("⟼", "rel"),
    "uparrow": ("↑", "rel"), "downarrow": ("↓", "rel"), "rightleftharpoons": ("⇌", "rel"),
    # delimiters
    "{": ("{", "open"), "}": ("}", "close"), "lbrace": ("{", "open"), "rbrace": ("}", "close"),
    "langle": ("⟨", "open"), "rangle": ("⟩", "close"), "lfloor": ("⌊", "open"), "rfloor": ("⌋", "close"),
    "lceil": ("⌈", "open"), "rceil": ("⌉", "close"), "lvert": ("|", "open"), "rvert": ("|", "close"),
    "lVert": ("‖", "open"), "rVert": ("‖", "close"), "vert": ("|", "punct"), "Vert": ("‖", "punct"),
    "|": ("‖", "punct"), "lbrack": ("[", "open"), "rbrack": ("]", "close"),
    "backslash": ("∖", "ord"),
    # ordinary symbols
    "infty": ("∞", "ord"), "partial": ("∂", "ord"), "nabla": ("∇", "ord"), "forall": ("∀", "ord"),
    "exists": ("∃", "ord"), "nexists": ("∄", "ord"), "emptyset": ("∅", "ord"), "varnothing": ("∅", "ord"),
    "ell": ("ℓ", "ord"), "hbar": ("ℏ", "ord"), "imath": ("ı", "ord"), "jmath": ("ȷ", "ord"),
    "Re": ("ℜ", "ord"), "Im": ("ℑ", "ord"), "wp": ("℘", "ord"), "aleph": ("ℵ", "ord"),
    "top": ("⊤", "ord"), "bot": ("⊥", "ord"), "intercal": ("ᵀ", "ord"), "prime": ("′", "ord"),
    "neg": ("¬", "ord"), "lnot": ("¬", "ord"), "angle": ("∠", "ord"), "triangle": ("△", "ord"),
    "square": ("□", "ord"), "checkmark": ("✓", "ord"), "degree": ("°", "ord"), "dag": ("†", "ord"),
    "ldots": ("…", "ord"), "dots": ("…", "ord"), "cdots": ("⋯", "ord"), "dotsc": ("…", "ord"),
    "dotsb": ("⋯", "ord"), "dotsm": ("⋯", "ord"), "dotsi": ("⋯", "ord"), "dotso": ("…", "ord"),
    "vdots": ("⋮", "ord"), "ddots": ("⋱", "ord"), "colon": (":", "punct"),
    "%": ("%", "ord"), "#": ("#", "ord"), "$": ("$", "ord"), "&": ("&amp;", "ord"), "_": ("_", "ord"),
    # large operators
    "sum": ("∑", "op"), "prod": ("∏", "op"), "coprod": ("∐", "op"), "int": ("∫", "op"),
    "iint": ("∬", "op"), "iiint": ("∭", "op"), "oint": ("∮", "op"), "bigcup": ("⋃", "op"),
    "bigcap": ("⋂", "op"), "bigoplus": ("⨁", "op"), "bigotimes": ("⨂", "op"), "bigodot": ("⨀", "op"),
    "bigvee": ("⋁", "op"), "bigwedge": ("⋀", "op"), "bigsqcup": ("⨆", "op"), "biguplus": ("⨄", "op"),
}

# named functions and operators, written upright ("arg min", "log x")
_NAMED_OPS = {
    "min", "max", "sup", "inf", "arg", "exp", "log", "ln", "lg", "det", "dim", "ker", "deg", "gcd", "hom",
    "lim", "liminf", "limsup", "sin", "cos", "tan", "cot", "sec", "csc", "sinh", "cosh", "tanh", "coth",
    "arcsin", "arccos", "arctan", "Pr", "tr", "trace", "rank", "diag", "sgn", "sign", "argmin", "argmax",
    "var", "cov", "erf", "injlim", "projlim",
}
_NAMED_OPS_TEXT = {"liminf": "lim inf", "limsup": "lim sup", "argmin": "arg min", "argmax": "arg max",
                   "injlim": "inj lim", "projlim": "proj lim", "varinjlim": "lim", "varprojlim": "lim"}

_SPACES = {",": " ", ":": " ", ">": " ", ";": " ", " ": " ", "!": "", "quad": "&nbsp;&nbsp;",
           "qquad": "&nbsp;&nbsp;&nbsp;&nbsp;", "enspace": " ", "thinspace": " ", "medspace": " ",
           "thickspace": " ", "negthinspace": "", "nobreakspace": "&nbsp;", "space": " "}

# sizing and spacing commands that are dropped (the delimiter after \left etc. stays)
_DROPPED = {
    "left", "right", "middle", "big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl", "Bigr", "biggl",
    "biggr", "Biggl", "Biggr", "bigm", "Bigm", "biggm", "Biggm", "displaystyle", "textstyle", "scriptstyle",
    "scriptscriptstyle", "limits", "nolimits", "nonumber", "notag", "mathop", "mathbin", "mathrel",
    "mathord", "mathpunct", "mathopen", "mathclose", "strut", "mathstrut", "relax", "allowbreak",
    "nonscript", "protect", "smash", "phantom", "vphantom", "hphantom", "boxed",
}
_DELIMITER_SIZERS = {"left", "right", "middle"} | {d for d in _DROPPED if d.lower().startswith("big")}
# commands whose (brace) argument is dropped with them
_DROPPED_WITH_ARG = {"label", "tag", "hspace", "vspace", "hskip", "kern", "mkern", "mspace", "phantom",
                     "vphantom", "hphantom", "color"}

# accents -> combining character
_ACCENTS = {
    "hat": "\u0302", "widehat": "\u0302", "bar": "\u0304", "overline": "\u0305", "tilde": "\u0303",
    "widetilde": "\u0303", "dot": "\u0307", "ddot": "\u0308", "dddot": "\u20db", "vec": "\u20d7",
    "overrightarrow": "\u20d7", "check": "\u030c", "breve": "\u0306", "acute": "\u0301", "grave": "\u0300",
    "mathring": "\u030a", "underline": "\u0332", "underbar": "\u0332",
}

_NEGATED = {"=": "≠", "∈": "∉", "⊂": "⊄", "⊆": "⊈", "≡": "≢", "∼": "≁", "≤": "≰", "≥": "≱", "∃": "∄",
            "|": "∤", "&lt;": "≮", "&gt;": "≯", "≈": "≉"}


def _alphabet(upper_start: int, lower_start: Optional[int], holes: dict) -> dict:
    table = {}
    for k in range(26):
        for base, start in ((65, upper_start), (97, lower_start)):
            if start is None:
                continue
            ch = chr(base + k)
            table[ch] = holes.get(ch, chr(start + k))
    return table


# Unicode mathematical alphabets (letters absent from the block live in Letterlike Symbols)
_SCRIPT = _alphabet(0x1D49C, None, {"B": "ℬ", "E": "ℰ", "F": "ℱ", "H": "ℋ", "I": "ℐ", "L": "ℒ", "M": "ℳ",
                                    "R": "ℛ"})
_DOUBLE_STRUCK = _alphabet(0x1D538, None, {"C": "ℂ", "H": "ℍ", "N": "ℕ", "P": "ℙ", "Q": "ℚ", "R": "ℝ",
                                           "Z": "ℤ"})
_DOUBLE_STRUCK.update({str(d): chr(0x1D7D8 + d) for d in range(10)})
_FRAKTUR = _alphabet(0x1D504, 0x1D51E, {"C": "ℭ", "H": "ℌ", "I": "ℑ", "R": "ℜ", "Z": "ℨ"})

_TOKEN = re.compile(r"\\([A-Za-z]+)|\\(.)|([{}^_])|(%[^\n]*)|(\s+)|(.)", re.S)
_TAG_OR_ENTITY = re.compile(r"(<[^>]*>|&#?\w+;)")
_TAGS = re.compile(r"<[^>]*>")
# a numerator or denominator that needs no parentheses: one word, number or symbol with its scripts
_SIMPLE = re.compile(r"^[\w.′\u0300-\u036f\u20d0-\u20ff∞∂∇ℓ]+$")


def _plain(fragment: str) -> str:
    """The text of an HTML fragment (tags dropped, entities decoded)."""
    return html.unescape(_TAGS.sub("", fragment))


def _map_text(fragment: str, fn) -> str:
    """Apply ``fn`` to the text of an HTML fragment, leaving tags and entities alone."""
    return "".join(part if _TAG_OR_ENTITY.fullmatch(part) else fn(part)
                   for part in _TAG_OR_ENTITY.split(fragment) if part)


def _upright(fragment: str) -> str:
    return re.sub(r"</?i>", "", fragment)


def _with_accent(fragment: str, mark: str, overline_span: bool) -> str:
    """Put a combining ``mark`` on a one-character fragment (inside its tags); on a longer one, on its last
    character, or an overline span for bars."""
    text = _plain(fragment).strip()
    if len(text) != 1 and overline_span:
        return f'<span style="text-decoration: overline">{fragment}</span>'
    parts = [p for p in _TAG_OR_ENTITY.split(fragment) if p]
    texts = [k for k, p in enumerate(parts) if not _TAGS.fullmatch(p) and p.strip()]
    if not texts:
        return fragment + mark
    k = texts[0] if len(text) == 1 else texts[-1]
    part = parts[k]
    if _TAG_OR_ENTITY.fullmatch(part):  # an entity (&lt;)
        parts[k] = part + mark
    else:
        chars = [c for c, ch in enumerate(part) if not ch.isspace()]
        c = chars[0] if len(text) == 1 else chars[-1]
        parts[k] = part[: c + 1] + mark + part[c + 1:]
    return "".join(parts)


class _Atom:
    __slots__ = ("html", "kind")

    def __init__(self, html_: str, kind: str):
        self.html = html_
        self.kind = kind


class _TexParser:
    """A small recursive-descent reader of the LaTeX math that docstrings use."""

    def __init__(self, tex: str):
        self.toks = []
        for m in _TOKEN.finditer(tex):
            cmd, sym, special, comment, space, char = m.groups()
            if cmd is not None:
                self.toks.append(("cmd", cmd))
            elif sym is not None:
                self.toks.append(("sym", sym))
            elif special is not None:
                self.toks.append((special, special))
            elif comment is not None:
                continue  # a TeX comment runs to the end of the line
            elif space is not None:
                self.toks.append(("space", " "))
            else:
                self.toks.append(("char", char))
        self.pos = 0

    # ------------------------------------------------------------------ tokens
    def peek(self, skip_space: bool = False):
        k = self.pos
        while skip_space and k < len(self.toks) and self.toks[k][0] == "space":
            k += 1
        return self.toks[k] if k < len(self.toks) else (None, None)

    def next(self):
        tok = self.peek()
        self.pos += 1
        return tok

    def skip_space(self):
        while self.peek()[0] == "space":
            self.pos += 1

    # ------------------------------------------------------------------ structure
    def parse(self) -> str:
        return self.sequence(until_close=False)

    def sequence(self, until_close: bool) -> str:
        atoms: List[_Atom] = []
        while True:
            kind, val = self.peek()
            if kind is None:
                break
            if kind == "}":
                self.pos += 1
                if until_close:
                    break
                continue  # a stray closing brace
            if kind in ("^", "_"):
                self.pos += 1
                while atoms and atoms[-1].kind == "space":
                    atoms.pop()
                base = atoms.pop() if atoms else _Atom("", "ord")
                atoms.append(self.script(base, kind))
                continue
            atom = self.atom()
            if atom is not None:
                atoms.append(atom)
        return self.join(atoms)

    @staticmethod
    def join(atoms: List[_Atom]) -> str:
        out = []
        prev = None
        for a in atoms:
            if prev is not None and a.html and not a.html.startswith((" ", "&nbsp;")) and (
                    (prev.kind == "op" and a.kind in ("var", "ord", "op"))
                    or (prev.kind == "frac" and a.kind in ("var", "ord", "op", "open", "group", "frac"))):
                out.append(" ")  # "arg min", "log x", "τ/2 (a + b)"
            out.append(a.html)
            if a.kind != "space" or a.html:
                prev = a
        return "".join(out)

    def argument(self) -> str:
        """One argument: a braced group, or the next single token (``\\hat x``, ``_2``)."""
        self.skip_space()
        kind, _ = self.peek()
        if kind is None:
            return ""
        if kind == "{":
            self.pos += 1
            return self.sequence(until_close=True)
        atom = self.atom()
        return atom.html if atom is not None else ""

    def optional_argument(self) -> Optional[str]:
        """A ``[...]`` optional argument (``\\sqrt[3]{x}``), or None."""
        self.skip_space()
        if self.peek() != ("char", "["):
            return None
        self.pos += 1
        atoms = []
        depth = 0
        while True:
            kind, val = self.peek()
            if kind is None:
                break
            if kind == "char" and val == "]" and depth == 0:
                self.pos += 1
                break
            if kind == "{":
                depth += 1
            elif kind == "}":
                depth -= 1
            atom = self.atom()
            if atom is not None:
                atoms.append(atom)
        return self.join(atoms)

    def text_argument(self) -> str:
        """The argument of ``\\text{...}``: text mode, spaces kept, upright."""
        self.skip_space()
        if self.peek()[0] != "{":
            atom = self.atom()
            return _upright(atom.html) if atom else ""
        self.pos += 1
        out = []
        depth = 0
        while True:
            kind, val = self.next()
            if kind is None:
                break
            if kind == "{":
                depth += 1
                continue
            if kind == "}":
                if depth == 0:
                    break
                depth -= 1
                continue
            if kind == "cmd":
                if val in _GREEK:
                    out.append(_GREEK[val])
                elif val in _SYMBOLS:
                    out.append(_SYMBOLS[val][0])
                elif val in _SPACES:
                    out.append(_SPACES[val])
                elif val in _DROPPED:
                    continue
                else:
                    out.append(html.escape(val, quote=False))
            elif kind == "sym":
                if val in _SPACES:
                    out.append(_SPACES[val])
                else:
                    out.append("<br>" if val == "\\" else html.escape(val, quote=False))
            elif kind == "char" and val in "$\\":
                continue
            elif kind == "char" and val == "~":
                out.append("&nbsp;")
            else:
                out.append(html.escape(val, quote=False))
        return "".join(out)

    def script(self, base: _Atom, which: str) -> _Atom:
        self.skip_space()
        content = self.argument().strip()
        text = _plain(content).strip()
        if which == "^" and text in ("T", "⊤", "ᵀ"):  # transpose
            return _Atom(base.html + "ᵀ", base.kind)
        if which == "^" and text and set(text) == {"′"}:  # primes
            return _Atom(base.html + text, base.kind)
        tag = "sup" if which == "^" else "sub"
        return _Atom(f"{base.html}<{tag}>{content}</{tag}>", base.kind if base.kind != "space" else "ord")

    # ------------------------------------------------------------------ atoms
    def atom(self) -> Optional[_Atom]:
        kind, val = self.next()
        if kind is None:
            return None
        if kind == "space":
            return _Atom(" ", "space")
        if kind == "{":
            inner = self.sequence(until_close=True)
            return _Atom(inner, "group")
        if kind == "}":
            return None
        if kind in ("^", "_"):  # handled by sequence(); here only as an argument ("x^^")
            return _Atom("", "ord")
        if kind == "char":
            return self.char(val)
        if kind == "sym":
            if val in _SPACES:
                return _Atom(_SPACES[val], "space")
            if val == "\\":
                return _Atom("<br>", "space")
            if val in _SYMBOLS:
                h, k = _SYMBOLS[val]
                return _Atom(h, k)
            return _Atom(html.escape(val, quote=False), "ord")
        atom = self.command(val)
        if atom is not None and atom.kind == "ord" and (val in _GREEK or val in _SYMBOLS):
            # the space after a control word only ends its name: "\\partial L" is ∂L, "\\lambda x" λx
            if self.peek()[0] == "space" and self.pos + 1 < len(self.toks):
                kind, nxt = self.toks[self.pos + 1]
                if (kind == "char" and nxt.isalnum()) or (kind == "cmd" and nxt in _GREEK):
                    self.pos += 1
        return atom

    @staticmethod
    def char(c: str) -> _Atom:
        if c.isalpha() and c.isascii():
            return _Atom(f"<i>{c}</i>", "var")
        if c.isdigit() or c == ".":
            return _Atom(c, "ord")
        if c == "-":
            return _Atom("−", "bin")
        if c in "+=*/":
            return _Atom(c, "bin" if c != "=" else "rel")
        if c in "<>":
            return _Atom(html.escape(c), "rel")
        if c in "([":
            return _Atom(c, "open")
        if c in ")]":
            return _Atom(c, "close")
        if c in ",;:!?|":
            return _Atom(c, "punct")
        if c == "'":
            return _Atom("′", "ord")
        if c == "~":
            return _Atom("&nbsp;", "space")
        if c == "&":  # alignment tab
            return _Atom(" ", "space")
        if c in "$\\":  # a dollar, or a lone backslash at the end
            return None
        return _Atom(html.escape(c, quote=False), "ord")

    def command(self, name: str) -> Optional[_Atom]:
        if name in _GREEK:
            return _Atom(_GREEK[name], "ord")
        if name in _SYMBOLS:
            h, k = _SYMBOLS[name]
            return _Atom(h, k)
        if name in _NAMED_OPS or name in _NAMED_OPS_TEXT:
            return _Atom(_NAMED_OPS_TEXT.get(name, name), "op")
        if name in _SPACES:
            return _Atom(_SPACES[name], "space")
        if name in _DROPPED_WITH_ARG:
            self.argument()
            return None
        if name in _DROPPED:
            if name in _DELIMITER_SIZERS and self.peek(skip_space=True) == ("char", "."):
                self.skip_space()
                self.pos += 1  # \left. / \right. : an invisible delimiter
            if name in ("smash", "boxed"):
                return _Atom(self.argument(), "group")
            return None
        if name in ("begin", "end"):
            env = self.text_argument().strip()  # the environment's name
            if name == "begin" and env in ("array", "tabular", "alignat", "alignat*", "alignedat") \
                    and self.peek(skip_space=True)[0] == "{":
                self.argument()  # the column specification
            return None
        if name in ("eqref", "ref"):
            return _Atom(f"({_upright(self.text_argument())})", "ord")
        if name in ("frac", "dfrac", "tfrac", "cfrac", "over"):
            num = self.argument().strip()
            den = self.argument().strip()
            return _Atom(f"{self._operand(num)}/{self._operand(den)}", "frac")
        if name in ("binom", "dbinom", "tbinom", "choose"):
            n = self.argument().strip()
            k = self.argument().strip()
            return _Atom(f"C({n}, {k})", "ord")
        if name == "sqrt":
            index = self.optional_argument()
            arg = self.argument().strip()
            root = f"<sup>{index}</sup>√" if index else "√"
            return _Atom(f"{root}({arg})", "ord")
        if name in ("text", "textrm", "textnormal", "mbox", "hbox", "textup", "textsf", "texttt", "textmd"):
            return _Atom(self.text_argument(), "ord")
        if name in ("textit", "emph", "textsl"):
            return _Atom(f"<i>{self.text_argument()}</i>", "ord")
        if name == "textbf":
            return _Atom(f"<b>{self.text_argument()}</b>", "ord")
        if name in ("mathrm", "mathup", "rm", "mathsf", "sf", "mathtt", "tt", "mathnormal"):
            return _Atom(_upright(self.argument()), "ord")
        if name in ("operatorname", "operatornamewithlimits"):
            if self.peek() == ("char", "*"):
                self.pos += 1
            return _Atom(_upright(self.argument()), "op")
        if name in ("mathit", "it"):
            return _Atom(self.argument(), "ord")
        if name in ("mathbf", "bf", "textbf"):
            return _Atom(f"<b>{_upright(self.argument())}</b>", "ord")
        if name in ("boldsymbol", "bm", "pmb", "mathbfit"):
            return _Atom(f"<b>{self.argument()}</b>", "ord")
        if name in ("mathcal", "mathscr", "cal", "scr"):
            return _Atom(_map_text(_upright(self.argument()), lambda s: "".join(_SCRIPT.get(c, c) for c in s)),
                         "ord")
        if name in ("mathbb", "Bbb", "mathds"):
            return _Atom(_map_text(_upright(self.argument()),
                                   lambda s: "".join(_DOUBLE_STRUCK.get(c, c) for c in s)), "ord")
        if name in ("mathfrak", "frak"):
            return _Atom(_map_text(_upright(self.argument()), lambda s: "".join(_FRAKTUR.get(c, c) for c in s)),
                         "ord")
        if name in _ACCENTS:
            arg = self.argument()
            return _Atom(_with_accent(arg, _ACCENTS[name], overline_span=name in ("bar", "overline")), "ord")
        if name in ("overbrace", "underbrace", "overset", "underset", "stackrel"):
            first = self.argument()
            if name in ("overset", "underset", "stackrel"):
                second = self.argument()
                return _Atom(second, "rel")
            return _Atom(first, "ord")
        if name == "not":
            self.skip_space()
            nxt = self.atom()
            if nxt is None:
                return _Atom("/", "rel")
            if nxt.html in _NEGATED:
                return _Atom(_NEGATED[nxt.html], "rel")
            return _Atom(_with_accent(nxt.html, "\u0338", overline_span=False), "rel")
        if name in ("pmod", "bmod", "mod"):
            if name == "pmod":
                return _Atom(f" (mod {self.argument()})", "ord")
            return _Atom("mod", "op")
        if name in ("cases", "matrix", "pmatrix", "bmatrix"):
            return None
        # an unknown command: its name, without the backslash
        return _Atom(html.escape(name, quote=False), "ord")

    @staticmethod
    def _operand(fragment: str) -> str:
        text = _plain(fragment).strip()
        if _SIMPLE.match(text) or not text:
            return fragment
        if text.startswith("(") and text.endswith(")") and text.count("(") == 1:
            return fragment
        return f"({fragment})"


def latex_to_html(tex: str) -> str:
    """Readable HTML (Unicode, ``<i>``, ``<sub>``, ``<sup>``) of a LaTeX math expression.

    Latin letters are italic, Greek letters and symbols their Unicode characters, ``\\frac{a}{b}`` is
    ``a/b`` (operands in parentheses when they are not one symbol), ``^T`` is ``ᵀ``; the output holds no
    backslash and no brace that the TeX source used for grouping (``\\{`` becomes ``{``).
    """
    parser = _TexParser(tex or "")
    out = parser.parse()
    out = out.replace("</i><i>", "")
    out = re.sub(r"<(sub|sup)>\s+", r"<\1>", out)
    out = re.sub(r"\s+</(sub|sup)>", r"</\1>", out)
    out = re.sub(r"[ \t\n]{2,}", " ", out)
    return out.strip()


# =====================================================================================================
# reStructuredText
# =====================================================================================================

_BULLET = re.compile(r"^(\s*)([-*+•‣⁃])( +|$)")
_ENUM = re.compile(r"^(\s*)(?:(\d+|#)([.)])|\((\d+|#)\))( +|$)")
_DIRECTIVE = re.compile(r"^\.\.\s+([A-Za-z][\w:.+-]*)::(?:\s+(.*))?$")
_ADORN = re.compile(r"^([=\-~^\"'`#*+:.<>_])\1{2,}$")
_FIELD = re.compile(r"^:(?![A-Za-z][\w.+-]*:`)([^:`\s][^`]*?):(\s+(.*))?$")
_OPTION = re.compile(r"^:[\w-]+:")

_ADMONITIONS = {
    "note": "Note", "warning": "Warning", "tip": "Tip", "important": "Important", "caution": "Caution",
    "hint": "Hint", "attention": "Attention", "danger": "Danger", "error": "Error", "seealso": "See also",
    "todo": "To do",
}
_VERSIONS = {"versionadded": "New in version", "versionchanged": "Changed in version",
             "deprecated": "Deprecated since version", "versionremoved": "Removed in version"}
_CODE_DIRECTIVES = {"code", "code-block", "sourcecode", "literalinclude", "doctest", "testcode", "parsed-literal"}
_DROPPED_DIRECTIVES = {"image", "figure", "toctree", "autosummary", "automodule", "autoclass", "autofunction",
                       "currentmodule", "module", "highlight", "index", "raw", "include", "only", "meta",
                       "contents", "sectnum", "plot", "table", "csv-table", "list-table", "footbibliography",
                       "bibliography", "default-role", "role", "tabularcolumns"}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _dedent(lines: List[str]) -> List[str]:
    widths = [_indent(line) for line in lines if line.strip()]
    cut = min(widths) if widths else 0
    return [line[cut:] if line.strip() else "" for line in lines]


def _trim(lines: List[str]) -> List[str]:
    lo, hi = 0, len(lines)
    while lo < hi and not lines[lo].strip():
        lo += 1
    while hi > lo and not lines[hi - 1].strip():
        hi -= 1
    return lines[lo:hi]


def _indented_block(lines: List[str], start: int, indent: int):
    """Lines from ``start`` that are blank or indented more than ``indent``; returns (end, lines)."""
    j = start
    while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > indent):
        j += 1
    block = lines[start:j]
    # trailing blank lines belong to the text after the block
    while block and not block[-1].strip():
        block.pop()
        j -= 1
    return j, block


def _display_math(lines: List[str]) -> List[str]:
    """``.. math::`` content: one centred paragraph per equation (equations are separated by blank lines)."""
    body = _trim(_dedent(lines))
    while body and _OPTION.match(body[0].strip()):
        body = body[1:]
    out, eq = [], []
    for line in body + [""]:
        if line.strip():
            eq.append(line.strip())
        elif eq:
            out.append(f'<p align="center">{latex_to_html(" ".join(eq))}</p>')
            eq = []
    return out


def _pre(lines: List[str]) -> str:
    return "<pre>" + html.escape("\n".join(_trim(_dedent(lines))), quote=False) + "</pre>"


def _unwrap(blocks: List[str]) -> str:
    """The HTML of a list item or definition: a lone paragraph loses its ``<p>``."""
    if len(blocks) == 1 and blocks[0].startswith("<p>") and blocks[0].endswith("</p>") \
            and blocks[0].count("<p>") == 1:
        return blocks[0][3:-4]
    return "\n".join(blocks)


def _directive(name: str, argument: str, body: List[str]) -> List[str]:
    if name == "math":
        return _display_math(([argument] if argument else []) + (_dedent(body) if body else []))
    if name in _CODE_DIRECTIVES:
        content = [ln for ln in _dedent(body)]
        while content and _OPTION.match(content[0].strip()):
            content = content[1:]
        return [_pre(content)] if _trim(content) else []
    if name in _DROPPED_DIRECTIVES:
        return []
    content = _dedent(body)
    while content and _OPTION.match(content[0].strip()):
        content = content[1:]
    if name in ("admonition",) or name in _ADMONITIONS:
        title = inline_to_html(argument) if name == "admonition" else _ADMONITIONS[name]
        text = ([argument] if argument and name != "admonition" else []) + content
        blocks = _blocks(text)
        if len(blocks) == 1 and blocks[0].startswith("<p>"):
            return [f"<p><b>{title}:</b> {blocks[0][3:]}"]
        return [f"<p><b>{title}:</b></p>"] + blocks
    if name in _VERSIONS:
        version, _, rest = (argument or "").partition(" ")
        lead = f"<i>{_VERSIONS[name]} {html.escape(version, quote=False)}.</i>"
        blocks = _blocks(([rest] if rest else []) + content)
        if blocks and blocks[0].startswith("<p>"):
            return [f"<p>{lead} {blocks[0][3:]}"] + blocks[1:]
        return [f"<p>{lead}</p>"] + blocks
    if name == "rubric":
        return [f"<h4>{inline_to_html(argument or '')}</h4>"]
    # any other directive: its argument and content as text
    return _blocks(([argument] if argument else []) + content)


def _item_marker(line: str, kind: str):
    """(indent, text column, marker style, number) of a list item line of ``kind``, or None."""
    if kind == "ul":
        m = _BULLET.match(line)
        if not m:
            return None
        return len(m.group(1)), m.end(), m.group(2), None
    m = _ENUM.match(line)
    if not m:
        return None
    num = m.group(2) or m.group(4)
    style = m.group(3) or "()"
    return len(m.group(1)), m.end(), style, (int(num) if num.isdigit() else None)


def _list(lines: List[str], i: int, kind: str):
    first = _item_marker(lines[i], kind)
    indent, _, style, number = first
    items = []
    n = len(lines)
    while i < n:
        marker = _item_marker(lines[i], kind)
        if marker is None or marker[0] != indent or marker[2] != style:
            break
        col = marker[1]
        body = [lines[i][col:]]
        i += 1
        while i < n and (not lines[i].strip() or _indent(lines[i]) > indent):
            ln = lines[i]
            body.append(ln[min(col, _indent(ln)):] if ln.strip() else "")
            i += 1
        while body and not body[-1].strip():
            body.pop()
        items.append(_unwrap(_blocks(body)))
    start = f' start="{number}"' if kind == "ol" and number not in (None, 1) else ""
    out = f"<{kind}{start}>" + "".join(f"<li>{item}</li>" for item in items) + f"</{kind}>"
    return i, out


def _list_start(line: str):
    """"ul" or "ol" if ``line`` starts a list item (a marker followed by text), else None."""
    for kind, pattern in (("ul", _BULLET), ("ol", _ENUM)):
        m = pattern.match(line)
        if m and line[m.end():].strip():
            return kind
    return None


def _paragraph_html(lines: List[str]) -> str:
    text = " ".join(line.strip() for line in lines)
    return f"<p>{inline_to_html(text)}</p>"


def _blocks(lines: List[str]) -> List[str]:
    """HTML blocks of reStructuredText ``lines`` (already dedented to the block's own level)."""
    lines = _dedent(lines)
    out: List[str] = []
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            i += 1
            continue
        ind = _indent(line)

        # explicit markup: directives, comments, targets, footnotes
        if stripped == ".." or stripped.startswith(".. "):
            end, body = _indented_block(lines, i + 1, ind)
            m = _DIRECTIVE.match(stripped)
            if m:
                out.extend(_directive(m.group(1).lower(), (m.group(2) or "").strip(), body))
            else:
                foot = re.match(r"^\.\.\s+\[([^\]]+)\]\s*(.*)$", stripped)
                if foot:  # a footnote or citation: "[1] text"
                    label = foot.group(1).lstrip("#*")
                    blocks = _blocks([foot.group(2)] + _dedent(body))
                    lead = f"[{html.escape(label, quote=False)}]" if label else ""
                    if blocks and blocks[0].startswith("<p>"):
                        out.append(f"<p>{lead} {blocks[0][3:]}")
                        out.extend(blocks[1:])
                    else:
                        out.append(f"<p>{lead}</p>")
                        out.extend(blocks)
                # anything else (comments, ".. _label:" targets, substitution definitions) is dropped
            i = end
            continue

        # section title with an overline, a transition, or a title with an underline
        if _ADORN.match(stripped):
            if i + 2 < n and lines[i + 2].strip() == stripped and lines[i + 1].strip():
                out.append(f"<h4>{inline_to_html(lines[i + 1].strip())}</h4>")
                i += 3
                continue
            if len(stripped) >= 4:
                out.append("<hr>")
                i += 1
                continue
        if i + 1 < n and _ADORN.match(lines[i + 1].strip()) and _indent(lines[i + 1]) == ind \
                and len(lines[i + 1].strip()) >= min(len(stripped), 4) and not _list_start(line):
            out.append(f"<h4>{inline_to_html(stripped)}</h4>")
            i += 2
            continue

        # lists
        kind = _list_start(line)
        if kind:
            i, h = _list(lines, i, kind)
            out.append(h)
            continue

        # doctest block
        if stripped.startswith(">>>"):
            j = i
            while j < n and lines[j].strip():
                j += 1
            out.append(_pre(lines[i:j]))
            i = j
            continue

        # field list (":Parameters: ...")
        fm = _FIELD.match(stripped)
        if fm:
            j, body = _indented_block(lines, i + 1, ind)
            blocks = _blocks(([fm.group(3)] if fm.group(3) else []) + _dedent(body))
            name = inline_to_html(fm.group(1))
            if blocks and blocks[0].startswith("<p>"):
                out.append(f"<p><b>{name}:</b> {blocks[0][3:]}")
                out.extend(blocks[1:])
            else:
                out.append(f"<p><b>{name}:</b></p>")
                out.extend(blocks)
            i = j
            continue

        # an indented block (block quote): its content, one level down
        if ind > 0:
            j, body = _indented_block(lines, i, ind - 1)
            out.extend(_blocks(body))
            i = j
            continue

        # definition list: a one-line term, its definition indented below it
        if i + 1 < n and lines[i + 1].strip() and _indent(lines[i + 1]) > ind:
            items = []
            while i < n and lines[i].strip() and _indent(lines[i]) == ind and i + 1 < n \
                    and lines[i + 1].strip() and _indent(lines[i + 1]) > ind and not _list_start(lines[i]):
                term = lines[i].strip()
                end, body = _indented_block(lines, i + 1, ind)
                term_html = " : ".join(f"<b>{inline_to_html(t.strip())}</b>" if k == 0 else
                                       f"<i>{inline_to_html(t.strip())}</i>"
                                       for k, t in enumerate(term.split(" : ")))
                items.append(f"<dt>{term_html}</dt><dd>{_unwrap(_blocks(body))}</dd>")
                i = end
                while i < n and not lines[i].strip():
                    i += 1
            out.append("<dl>" + "".join(items) + "</dl>")
            continue

        # a paragraph; after a line ending in ":" a list may start without a blank line
        j = i
        para = []
        while j < n and lines[j].strip() and _indent(lines[j]) <= ind:
            if para and para[-1].rstrip().endswith(":") and _list_start(lines[j]):
                break
            if para and _DIRECTIVE.match(lines[j].strip()):
                break
            para.append(lines[j])
            j += 1
        if j < n and lines[j].strip() and _indent(lines[j]) > ind and para:
            # hanging continuation lines (not a definition: the paragraph has several lines)
            while j < n and lines[j].strip() and not (_list_start(lines[j]) and para[-1].rstrip().endswith(":")):
                para.append(lines[j])
                j += 1
        last = para[-1].rstrip()
        if last.endswith("::"):
            # a literal block follows
            text = last[:-2].rstrip() if last.endswith(" ::") or last.strip() == "::" else last[:-1]
            para[-1] = text
            if any(p.strip() for p in para):
                out.append(_paragraph_html([p for p in para if p.strip()]))
            k = j
            while k < n and not lines[k].strip():
                k += 1
            if k < n and _indent(lines[k]) > ind:
                end, body = _indented_block(lines, k, ind)
                out.append(_pre(body))
                j = end
            elif k < n and lines[k].lstrip().startswith((">", "|")):  # quoted literal block
                end = k
                while end < n and lines[end].strip():
                    end += 1
                out.append(_pre(lines[k:end]))
                j = end
            i = j
            continue
        out.append(_paragraph_html(para))
        i = j
    return out


def rst_to_html(text: str, docstring: bool = True) -> str:
    """HTML of reStructuredText (see the module docstring for what is converted).

    ``docstring=True``: ``text`` is a docstring, indented as Python writes it (the first line flush, the
    others indented): it is cleaned up by :func:`inspect.cleandoc`. ``False``: plain reStructuredText, only
    the indentation common to all its lines is removed.
    """
    text = (inspect.cleandoc(text or "") if docstring else textwrap.dedent(text or "")).expandtabs(8)
    return "\n".join(_blocks(text.split("\n")))


# ----------------------------------------------------------------------------------- inline markup

_INLINE = re.compile(r"""
    (?P<lit>``(?P<lit_t>.+?)``(?!`))
  | (?P<role>:(?P<rn>[A-Za-z][\w.+-]*(?::[A-Za-z][\w.+-]*)?):`(?P<rt>(?:[^`\\]|\\.)+?)`(?P<rus>__?)?)
  | (?P<tick>`(?P<tt>(?:[^`\\]|\\.)+?)`(?::(?P<srn>[A-Za-z][\w.+-]*(?::[A-Za-z][\w.+-]*)?):)?(?P<us>__?)?)
  | (?P<strong>\*\*(?P<st>.+?)\*\*)
  | (?P<em>\*(?P<et>[^*]+?)\*)
  | (?P<url>\b(?:https?|ftp)://[^\s<>"'`]*[^\s<>"'`.,;:!?)\]])
  | (?P<foot>\[(?P<ft>[0-9]+|\#[\w-]*|\*|[A-Za-z][\w.-]*)\]_(?![\w]))
  | (?P<esc>\\(?P<ec>.?))
""", re.X | re.S)

_OPENERS = set(" \t\n'\"([{<-/:‘“’«¡¿‐‑‒–—") | {""}
_CLOSERS = set(" \t\n'\")]}>-/:.,;!?\\’”»‐‑‒–—") | {""}
_PAIRS = {"'": "'", '"': '"', "(": ")", "[": "]", "{": "}", "<": ">", "‘": "’", "“": "”", "«": "»"}
_CODE_ROLES = {"code", "literal", "file", "kbd", "program", "command", "envvar", "option", "regexp",
               "makevar", "mimetype", "newsgroup", "samp", "guilabel", "menuselection", "token", "keyword"}
_OBJ_ROLES = {"func", "meth", "class", "attr", "data", "obj", "exc", "const", "any", "type", "property",
              "function", "method", "member", "var", "macro", "struct", "enum", "enumerator"}
_TEXT_ROLES = {"ref", "doc", "term", "numref", "abbr", "download", "cite", "citep", "citet", "title-reference",
               "title", "t", "dfn"}


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text).replace("\\", "")


def _title_target(text: str):
    m = re.match(r"^(.*?)\s*<([^<>]+)>$", text, re.S)
    if m and m.group(1):
        return m.group(1), m.group(2)
    return None, text


def _object_name(text: str, role: str) -> str:
    title, target = _title_target(_unescape(text))
    if title is not None:
        return title
    target = target.strip()
    short = target.startswith("~")
    target = target.lstrip("~.!")
    if role == "mod" and not short:
        return target
    name = target.rsplit(".", 1)[-1] if "." in target.replace("()", "") else target
    return name[:-2] if name.endswith("()") else name


def _role_html(role: str, text: str) -> str:
    role = role.lower()
    if ":" in role:
        domain, _, rest = role.partition(":")
        role = rest if domain in ("py", "c", "cpp", "js", "rst", "std", "math") else role
    e = lambda s: html.escape(s, quote=False)  # noqa: E731
    if role in ("math", "m"):
        return latex_to_html(text)
    if role in _OBJ_ROLES or role == "mod" or role == "module":
        return f"<code>{e(_object_name(text, 'mod' if role in ('mod', 'module') else role))}</code>"
    if role == "samp":
        parts = re.split(r"(\{[^{}]*\})", _unescape(text))
        return "<code>" + "".join(f"<i>{e(p[1:-1])}</i>" if p.startswith("{") and p.endswith("}") else e(p)
                                  for p in parts) + "</code>"
    if role in _CODE_ROLES:
        return f"<code>{e(_unescape(text))}</code>"
    if role in ("emphasis", "i"):
        return f"<i>{e(_unescape(text))}</i>"
    if role in ("strong", "b"):
        return f"<b>{e(_unescape(text))}</b>"
    if role in ("sub", "subscript"):
        return f"<sub>{e(_unescape(text))}</sub>"
    if role in ("sup", "superscript"):
        return f"<sup>{e(_unescape(text))}</sup>"
    if role == "abbr":
        return e(re.sub(r"\s*\(.*\)\s*$", "", _unescape(text)))
    if role == "pep":
        num = re.sub(r"\D", "", text)
        return f'<a href="https://peps.python.org/pep-{num.zfill(4)}/">PEP {e(num)}</a>'
    if role == "rfc":
        num = re.sub(r"\D", "", text)
        return f'<a href="https://datatracker.ietf.org/doc/html/rfc{num}">RFC {e(num)}</a>'
    if role in ("eq", "eqref"):
        return f"({e(_unescape(text))})"
    if role in _TEXT_ROLES:
        title, target = _title_target(_unescape(text))
        if title is not None:
            return e(title)
        target = target.lstrip("~!")
        return e(target.rsplit("/", 1)[-1] if role == "doc" else target)
    return e(_unescape(text))


def _is_markup(text: str, start: int, end: int, inner_start: int, inner_end: int) -> bool:
    """reStructuredText's inline markup recognition rules, for a match spanning ``[start, end)``."""
    before = text[start - 1] if start > 0 else ""
    after = text[end] if end < len(text) else ""
    if before not in _OPENERS and not (before and _category_open(before)):
        return False
    if after not in _CLOSERS and not (after and _category_close(after)):
        return False
    inner = text[inner_start:inner_end]
    if not inner or inner[0].isspace() or inner[-1].isspace():
        return False
    # "(*)", '"*"' and the like: a start-string between matching quotes or brackets is not markup
    if before in _PAIRS and inner[0] == _PAIRS[before]:
        return False
    return True


def _category_open(ch: str) -> bool:
    return unicodedata.category(ch) in ("Ps", "Pi", "Pf", "Pd", "Po")


def _category_close(ch: str) -> bool:
    return unicodedata.category(ch) in ("Pe", "Pi", "Pf", "Pd", "Po")


def inline_to_html(text: str) -> str:
    """HTML of one paragraph's inline reStructuredText (``code``, *emphasis*, **strong**, roles, links)."""
    text = text or ""
    out = []
    pos = 0
    e = lambda s: html.escape(s, quote=False)  # noqa: E731
    while pos < len(text):
        m = _INLINE.search(text, pos)
        if m is None:
            out.append(e(text[pos:]))
            break
        out.append(e(text[pos:m.start()]))
        kind = m.lastgroup
        ok = True
        if kind == "lit":
            ok = _is_markup(text, m.start(), m.end(), m.start("lit_t"), m.end("lit_t"))
            if ok:
                out.append(f"<code>{e(m.group('lit_t'))}</code>")
        elif kind == "role":
            ok = _is_markup(text, m.start(), m.end(), m.start("rt"), m.end("rt"))
            if ok:
                out.append(_role_html(m.group("rn"), m.group("rt")))
        elif kind == "tick":
            ok = _is_markup(text, m.start(), m.end(), m.start("tt"), m.end("tt"))
            if ok:
                body = m.group("tt")
                if m.group("srn"):
                    out.append(_role_html(m.group("srn"), body))
                elif m.group("us"):
                    title, target = _title_target(_unescape(body))
                    if title is not None and re.match(r"^(https?|ftp|mailto):", target):
                        out.append(f'<a href="{html.escape(target, quote=True)}">{e(title)}</a>')
                    elif re.match(r"^(https?|ftp)://", target):
                        out.append(f'<a href="{html.escape(target, quote=True)}">{e(target)}</a>')
                    else:
                        out.append(e(title if title is not None else target))
                else:
                    # role-less interpreted text: Python docstrings mean a name (the default role)
                    out.append(f"<code>{e(_unescape(body))}</code>")
        elif kind == "strong":
            ok = _is_markup(text, m.start(), m.end(), m.start("st"), m.end("st"))
            if ok:
                out.append(f"<b>{e(_unescape(m.group('st')))}</b>")
        elif kind == "em":
            ok = _is_markup(text, m.start(), m.end(), m.start("et"), m.end("et"))
            if ok:
                out.append(f"<i>{e(_unescape(m.group('et')))}</i>")
        elif kind == "url":
            url = m.group("url")
            out.append(f'<a href="{html.escape(url, quote=True)}">{e(url)}</a>')
        elif kind == "foot":
            label = m.group("ft").lstrip("#*")
            out.append(f"[{e(label)}]" if label else "")
        elif kind == "esc":
            ch = m.group("ec")
            out.append("" if not ch or ch.isspace() else e(ch))
        if ok:
            pos = m.end()
        else:
            out.append(e(text[m.start()]))
            pos = m.start() + 1
    return "".join(out)
