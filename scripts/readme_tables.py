"""Put the benchmarks' tables into the README: every block

    <!-- table: out/NAME.md -->
    ...
    <!-- /table -->

is replaced by the current contents of ``out/NAME.md`` (written by the bench that owns it),
so the README quotes only what one command produced. Run after the benches:
``python scripts/readme_tables.py`` (``--check`` exits 1 when the README is out of date).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- table: (?P<src>[^ ]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)


def render(text: str) -> str:
    def fill(m: re.Match) -> str:
        src = REPO / m["src"]
        if not src.is_file():
            print(f"readme_tables: {m['src']} missing (run its bench); block kept", file=sys.stderr)
            return m.group(0)
        return m.group(1) + src.read_text().rstrip("\n") + "\n" + m.group(4)

    return BLOCK.sub(fill, text)


def main(argv: list[str]) -> int:
    readme = REPO / "README.md"
    old = readme.read_text()
    new = render(old)
    if "--check" in argv:
        return int(new != old)
    if new != old:
        tmp = readme.with_name("README.md.tmp")
        tmp.write_text(new)
        tmp.replace(readme)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
