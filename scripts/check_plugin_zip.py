#!/usr/bin/env python3
"""Check a QGIS plugin zip against the rules of the QGIS plugin repository (plugins.qgis.org).

    python scripts/check_plugin_zip.py dist/hadcore_qgis-0.1.0.zip    # prints the problems, exit 1 if any

The rules, as the repository's upload validator and security scan apply them:

* the zip is at most 25 MB and a valid zip; no name contains ".." or starts with "/";
* no ``.pyc`` file and no ``__pycache__``, ``.git`` or ``__MACOSX`` folder;
* exactly one top-level folder, named like ``^[A-Za-z][A-Za-z0-9-_]+$``, holding ``__init__.py``,
  ``metadata.txt`` and ``LICENSE``;
* ``metadata.txt`` [general] has name, description, version, qgisMinimumVersion, author, email, about,
  tracker and repository; tracker, repository (and homepage, if given) are URLs with scheme and host; the
  author has no "/";
* no binary file (a NUL byte or text that is not UTF-8);
* bandit finds nothing of medium or high severity; no call of the builtins ``exec`` or ``eval``.

hadcore adds: ``qgisMaximumVersion`` and ``changelog`` are present and ``about`` names the Python packages
the plugin needs (numpy, scipy, scikit-learn, torch).
"""

from __future__ import annotations

import argparse
import ast
import configparser
import importlib.util
import json
import re
import subprocess  # nosec B404 # runs bandit with sys.executable, no shell
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import List, Optional
from urllib.parse import urlparse

MAX_BYTES = 25 * 1024 * 1024
FOLDER_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-_]+$")
FORBIDDEN_DIRS = {"__pycache__", ".git", "__MACOSX"}
REQUIRED_METADATA = ("name", "description", "version", "qgisMinimumVersion", "author", "email", "about",
                     "tracker", "repository")
URL_FIELDS = ("tracker", "repository", "homepage")
ABOUT_MUST_NAME = ("numpy", "scipy", "scikit-learn", "torch")


def _binary(data: bytes) -> bool:
    if b"\x00" in data:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _exec_eval_calls(source: bytes, name: str) -> List[str]:
    try:
        tree = ast.parse(source, filename=name)
    except (SyntaxError, ValueError) as exc:
        return [f"{name}: not valid Python ({exc.__class__.__name__}: {exc})"]
    return [
        f"{name}:{node.lineno}: calls the builtin {node.func.id}()"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("exec", "eval")
    ]


def _check_metadata(text: str, where: str) -> List[str]:
    cp = configparser.ConfigParser()  # what QGIS and the repository read metadata.txt with
    try:
        cp.read_string(text, source=where)
    except configparser.Error as exc:
        return [f"{where}: cannot be parsed ({str(exc).splitlines()[0]})"]
    if not cp.has_section("general"):
        return [f"{where}: no [general] section"]
    problems: List[str] = []
    meta = {}
    for key in cp.options("general"):
        try:
            meta[key] = cp.get("general", key).strip()
        except configparser.Error as exc:  # e.g. a bare '%' under the default interpolation
            problems.append(f"{where}: field {key!r} cannot be read ({str(exc).splitlines()[0]})")
    for key in REQUIRED_METADATA + ("qgisMaximumVersion", "changelog"):
        if not meta.get(key.lower()):
            problems.append(f"{where}: required field {key!r} is missing or empty")
    for key in URL_FIELDS:
        value = meta.get(key.lower())
        if value:
            url = urlparse(value)
            if not (url.scheme and url.netloc):
                problems.append(f"{where}: {key} {value!r} is not a URL with scheme and host")
    if "/" in meta.get("author", ""):
        problems.append(f"{where}: author {meta['author']!r} contains '/'")
    about = meta.get("about", "").lower()
    if about:
        for dep in ABOUT_MUST_NAME:
            if not re.search(rf"(?<![\w-]){re.escape(dep)}(?![\w-])", about):
                problems.append(f"{where}: about does not name the dependency {dep!r}")
    return problems


def _bandit(folder: Path) -> List[str]:
    if importlib.util.find_spec("bandit") is None:
        return [f"bandit is not installed in {sys.executable} (pip install bandit): the security scan did not run"]
    cmd = [sys.executable, "-m", "bandit", "-r", str(folder), "-f", "json", "-q"]
    run = subprocess.run(cmd, capture_output=True, text=True, check=False)  # nosec B603 # fixed argv, no shell
    try:
        report = json.loads(run.stdout)
    except ValueError:
        err = (run.stderr or run.stdout).strip().splitlines()
        return [f"bandit failed (exit {run.returncode}): {err[-1] if err else 'no output'}"]
    problems = []
    for res in report.get("results", []):
        if res.get("issue_severity", "").upper() in ("MEDIUM", "HIGH"):
            rel = Path(res.get("filename", "?")).resolve().relative_to(folder.resolve().parent).as_posix()
            problems.append(f"{rel}:{res.get('line_number')}: bandit {res.get('test_id')} "
                            f"({res.get('issue_severity').lower()}): {res.get('issue_text')}")
    for err in report.get("errors", []):
        problems.append(f"bandit could not scan {err.get('filename')}: {err.get('reason')}")
    return problems


def check(zip_path, bandit: bool = True) -> List[str]:
    """The problems the QGIS plugin repository would find with the zip ``zip_path`` ([] = none)."""
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        return [f"{zip_path}: no such file"]
    problems: List[str] = []
    size = zip_path.stat().st_size
    if size > MAX_BYTES:
        problems.append(f"{zip_path.name}: {size / 2**20:.1f} MB, the repository accepts at most 25 MB")
    if not zipfile.is_zipfile(zip_path):
        return problems + [f"{zip_path.name}: not a zip file"]
    with zipfile.ZipFile(zip_path) as z:
        bad = z.testzip()
        if bad is not None:
            return problems + [f"{zip_path.name}: corrupt member {bad}"]
        infos = z.infolist()
        names = [i.filename for i in infos]
        unsafe = [n for n in names if ".." in n or n.startswith("/") or n.startswith("\\")]
        problems += [f"{n}: unsafe name (contains '..' or starts with '/')" for n in unsafe]
        for n in names:
            parts = PurePosixPath(n).parts
            hits = FORBIDDEN_DIRS.intersection(parts[:-1] if not n.endswith("/") else parts)
            if hits:
                problems.append(f"{n}: inside a forbidden folder {sorted(hits)[0]}")
            if n.endswith(".pyc"):
                problems.append(f"{n}: compiled Python (.pyc) is not accepted")

        tops = sorted({PurePosixPath(n).parts[0] for n in names if PurePosixPath(n).parts})
        if len(tops) != 1:
            problems.append(f"the zip must hold exactly one top-level folder, it holds {tops}")
            with_meta = [t for t in tops if f"{t}/metadata.txt" in names]
            if len(with_meta) != 1:
                return problems
            top = with_meta[0]  # check the plugin folder all the same
        else:
            top = tops[0]
        if not FOLDER_RE.match(top):
            problems.append(f"{top}: the plugin folder name must match {FOLDER_RE.pattern}")
        if top in names and not any(n.startswith(top + "/") for n in names):
            problems.append(f"{top}: the top level is a file, not a folder")
        for required in ("__init__.py", "metadata.txt", "LICENSE"):
            if f"{top}/{required}" not in names:
                problems.append(f"{top}/{required}: missing (the repository requires it in the plugin folder)")
        if f"{top}/metadata.txt" in names:
            raw = z.read(f"{top}/metadata.txt")
            try:
                problems += _check_metadata(raw.decode("utf-8"), f"{top}/metadata.txt")
            except UnicodeDecodeError:
                problems.append(f"{top}/metadata.txt: not UTF-8")

        files = [i for i in infos if not i.is_dir()]
        for info in files:
            data = z.read(info)
            if _binary(data):
                problems.append(f"{info.filename}: binary file (the repository accepts no binary file)")
            elif info.filename.endswith(".py"):
                problems += _exec_eval_calls(data, info.filename)

        if bandit and not unsafe:
            with tempfile.TemporaryDirectory(prefix="check_plugin_zip-") as tmp:
                root = Path(tmp)
                for info in files:
                    dest = root.joinpath(*PurePosixPath(info.filename).parts)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(z.read(info))
                problems += _bandit(root / top)
    return problems


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("zip", type=Path, help="the plugin zip (scripts/build_plugin_zip.py writes dist/*.zip)")
    ap.add_argument("--no-bandit", action="store_true", help="skip the bandit security scan")
    args = ap.parse_args(argv)
    problems = check(args.zip, bandit=not args.no_bandit)
    for p in problems:
        print(p)
    if problems:
        print(f"{args.zip}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"{args.zip}: ok (QGIS plugin repository rules)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
