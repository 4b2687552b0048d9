"""Put the benchmarks' tables into the README and the docs pages: every block

    <!-- table: out/NAME.md -->
    ...
    <!-- /table -->

in ``README.md`` or ``docs/*.md`` is replaced by the current contents of ``out/NAME.md``
(written by the bench that owns it), so the pages quote only what one command produced.
Run after the benches: ``python scripts/readme_tables.py`` (``--check`` exits 1 and names
the pages that are out of date).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- table: (?P<src>[^ ]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)


def pages(root: Path = REPO) -> list[Path]:
    """The pages whose table blocks are filled: ``README.md`` and ``docs/*.md``."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def render(text: str, root: Path = REPO) -> str:
    def fill(m: re.Match) -> str:
        src = root / m["src"]
        if not src.is_file():
            print(f"readme_tables: {m['src']} missing (run its bench); block kept", file=sys.stderr)
            return m.group(0)
        return m.group(1) + src.read_text().rstrip("\n") + "\n" + m.group(4)

    return BLOCK.sub(fill, text)


def main(argv: list[str]) -> int:
    stale = []
    for page in pages():
        old = page.read_text()
        new = render(old)
        if new == old:
            continue
        stale.append(page.relative_to(REPO))
        if "--check" not in argv:
            tmp = page.with_name(page.name + ".tmp")
            tmp.write_text(new)
            tmp.replace(page)
    if "--check" in argv:
        for page in stale:
            print(f"readme_tables: {page} is out of date", file=sys.stderr)
        return int(bool(stale))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
