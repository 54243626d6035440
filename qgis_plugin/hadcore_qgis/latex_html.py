"""LaTeX math -> the Unicode and HTML that QGIS's help panel shows.

The help panel of a Processing algorithm is a ``QTextBrowser``: a subset of HTML 4, no MathJax. The LaTeX of
the ``:math:`` roles and ``.. math::`` blocks of detector docstrings (:mod:`hadcore_qgis.rst_html` finds them)
is written with Unicode and ``i``/``sub``/``sup`` instead: :func:`latex_to_html` writes Greek letters,
operators and relations as their Unicode symbols, fractions as ``a/b``, accents as combining marks, drops
``\\left``/``\\right`` and sizes, and writes unknown commands as their name without the backslash.

Pure Python (standard library only): the plugin must import with the standard library and numpy alone.
"""

from __future__ import annotations

import html
import re
from typing import List, Optional

__all__ = ["latex_to_html"]


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
