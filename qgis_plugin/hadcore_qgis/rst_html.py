"""Docstring reStructuredText -> the HTML that QGIS's help panel shows.

The help panel of a Processing algorithm is a ``QTextBrowser``: a subset of HTML 4 (``p``, ``b``, ``i``,
``code``, ``sub``, ``sup``, ``ul``/``ol``/``li``, ``dl``, ``pre``, ``h3``/``h4``, ``a``, ``br``), no CSS layout, no
MathJax. A detector's docstring is the one description of its method, so the help is generated from it:

- :func:`rst_to_html` converts the block structure (paragraphs, bullet and numbered lists, definition and
  field lists, section titles, literal blocks, ``.. math::`` and admonition directives) and, through
  :func:`inline_to_html`, the inline markup (double back-quotes, emphasis, strong, roles such as
  ``:math:``, ``:func:``, ``:class:``, hyperlinks);
- the LaTeX of ``:math:`` roles and ``.. math::`` blocks becomes Unicode and ``sub``/``sup`` through
  :func:`hadcore_qgis.latex_html.latex_to_html`.

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
from typing import List

from .latex_html import latex_to_html

# latex_to_html is re-exported: tests/test_qgis_help.py imports it from this module
__all__ = ["rst_to_html", "inline_to_html", "latex_to_html"]


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
