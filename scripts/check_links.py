"""Check the relative links of the README and the docs pages (standard library only).

Every Markdown link or image ``[text](target)`` and every ``<a href>`` / ``<img src>`` in
``README.md`` and ``docs/*.md`` whose target is relative must name a file or folder that
exists; a ``#anchor`` (alone, or after a ``.md`` file) must match a heading of that page,
slugged as GitHub does (lower case, punctuation dropped, spaces to hyphens, ``-1``, ``-2``
for repeats), or an explicit ``<a id=...>`` / ``<a name=...>``. External links
(``https:``, ``mailto:``, ...) are not fetched. Links inside code blocks and code spans
are ignored.

``python scripts/check_links.py [ROOT]`` exits 1 and lists the broken links as
``file:line: target (reason)``; ROOT defaults to the repository.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import unquote

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target "title") and ![alt](target); text may hold one level of brackets.
MD_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HTML_LINK = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*[\"']([^\"']*)[\"']", re.I)
HTML_ANCHOR = re.compile(r"<a\b[^>]*?\b(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", re.I)
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def pages(root: Path) -> list[Path]:
    """The checked pages: ``README.md`` and ``docs/*.md`` (those that exist)."""
    found = [root / "README.md"] if (root / "README.md").is_file() else []
    return found + sorted((root / "docs").glob("*.md"))


def prose_lines(text: str, blank_code: bool = True) -> list[tuple[int, str]]:
    """``(line number, line)`` outside fenced code blocks (code spans blanked unless
    ``blank_code`` is false: a heading's anchor keeps their text)."""
    out, fence = [], None
    for n, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if m and (fence is None or (m[1][0] == fence[0] and len(m[1]) >= len(fence))):
            fence = m[1] if fence is None else None
            continue
        if fence is None:
            out.append((n, CODE_SPAN.sub(lambda s: " " * len(s[0]), line) if blank_code else line))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text (as github-slugger computes it)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links -> their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    text = text.replace("`", "")
    text = re.sub(r"(\*\*|__|\*|~~)(.+?)\1", r"\2", text)  # emphasis markers
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a link into ``path`` may use."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8"), blank_code=False):
        found.update(HTML_ANCHOR.findall(line))
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m[2])
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def check_page(page: Path, root: Path) -> list[str]:
    """The broken links of one page, as ``file:line: target (reason)``."""
    broken = []
    for n, line in prose_lines(page.read_text(encoding="utf-8")):
        targets = MD_LINK.findall(line) + HTML_LINK.findall(line)
        if m := REF_DEF.match(line):
            targets.append(m[1])
        for target in targets:
            if not target or SCHEME.match(target) or target.startswith("//"):
                continue
            path_part, _, anchor = target.partition("#")
            path_part = unquote(path_part.split("?", 1)[0])
            base = root if path_part.startswith("/") else page.parent  # "/x": from the root
            dest = (base / path_part.lstrip("/")).resolve() if path_part else page
            where = f"{page.relative_to(root)}:{n}: {target}"
            if not dest.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and dest.suffix == ".md" and unquote(anchor) not in anchors(dest):
                broken.append(f"{where} (no heading with that anchor)")
    return broken


def main(argv: list[str]) -> int:
    root = Path(argv[0]).resolve() if argv else Path(__file__).resolve().parents[1]
    checked = pages(root)
    broken = [b for page in checked for b in check_page(page, root)]
    for line in broken:
        print(line)
    status = f"{len(broken)} broken link(s)" if broken else "all links resolve"
    print(f"check_links: {len(checked)} pages, {status}", file=sys.stderr)
    return int(bool(broken))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
