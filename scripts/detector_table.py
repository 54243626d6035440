"""Print (or, with --write, refresh in README.md) the table of registered detectors.

The table is generated from the registry and the detectors' declarations; tests/test_readme.py fails when
the README's copy is stale.
"""

import re
import sys
from pathlib import Path

import hadcore

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- detectors:start -->", "<!-- detectors:end -->"
#: Context.scaling in words (docs/streaming.md)
SCALING = {
    "local": "halo",
    "stats": "statistics pass",
    "sample": "fit on a sample",
    "tiles": "scene tiles, blended",
}


def table() -> str:
    rows = ["| name | family | what it does | scales by | parameters | reference |",
            "| --- | --- | --- | --- | --- | --- |"]
    for name in hadcore.list_detectors():
        cls = hadcore.get_detector_class(name)
        params = ", ".join(f"`{p.name}`" for p in cls.params) or "-"
        ref = cls.reference.replace("|", "/")
        family = cls.family + (" (trains)" if cls.trains else "")
        ctx = cls._default_context()
        scales = SCALING[ctx.scaling] + (" (exact)" if ctx.exact else "")
        rows.append(f"| `{name}` | {family} | {cls.summary} | {scales} | {params} | {ref} |")
    return "\n".join(rows)


def block() -> str:
    return f"{START}\n{table()}\n{END}"


def main():
    if "--write" in sys.argv:
        text = README.read_text()
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda m: block(), text, flags=re.S)
        README.write_text(text)
    else:
        print(table())


if __name__ == "__main__":
    main()
