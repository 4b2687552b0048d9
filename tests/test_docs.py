"""The front door stays whole: every relative link and anchor of README.md and docs/*.md
resolves (scripts/check_links.py passes on the repository, and fails, naming the link, on
a copy with a broken file link or a broken anchor); anchors are GitHub's heading slugs; the
README stays at most 300 lines."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHECK = REPO / "scripts" / "check_links.py"


def check_links(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(CHECK), str(root)], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def docs_copy(tmp_path: Path) -> Path:
    """README.md and docs/ copied into a temporary repository root."""
    shutil.copy(REPO / "README.md", tmp_path / "README.md")
    shutil.copytree(REPO / "docs", tmp_path / "docs")
    return tmp_path


def test_repository_links_resolve():
    run = check_links(REPO)
    assert run.returncode == 0, run.stdout + run.stderr


def test_copy_is_clean(docs_copy: Path):
    assert check_links(docs_copy).returncode == 0


@pytest.mark.parametrize(
    "link, reason",
    [
        ("[gone](docs/no_such_page.md)", "no such file"),
        ("[gone](docs/usage.md#no-such-heading)", "no heading with that anchor"),
        ("[gone](#no-such-heading-here)", "no heading with that anchor"),
        ("![gone](docs/img/no_such_picture.png)", "no such file"),
    ],
)
def test_broken_link_fails(docs_copy: Path, link: str, reason: str):
    readme = docs_copy / "README.md"
    readme.write_text(readme.read_text() + f"\nSee {link}.\n")
    run = check_links(docs_copy)
    assert run.returncode == 1
    target = link[link.index("(") + 1 : -1]
    assert "README.md:" in run.stdout and target in run.stdout and reason in run.stdout


def test_links_in_code_are_not_checked(docs_copy: Path):
    readme = docs_copy / "README.md"
    readme.write_text(readme.read_text() + "\n`[x](gone.md)`\n\n```\n[y](gone.md)\n```\n")
    assert check_links(docs_copy).returncode == 0


@pytest.mark.parametrize(
    "heading, slug",
    [
        (
            "Compact mode (≤ 8 KB per image; `ilias_rerank.compact`)",
            "compact-mode--8-kb-per-image-ilias_rerankcompact",
        ),
        ("The command line: `ilias-rerank`", "the-command-line-ilias-rerank"),
        ("**Bold** and [a link](x.md)", "bold-and-a-link"),
        ("Déjà vu 2×", "déjà-vu-2"),
    ],
)
def test_github_slugs(heading: str, slug: str):
    sys.path.insert(0, str(CHECK.parent))
    try:
        import check_links as module
    finally:
        sys.path.remove(str(CHECK.parent))
    assert module.slug(heading) == slug


def test_repeated_headings_get_numbered_anchors(docs_copy: Path):
    page = docs_copy / "docs" / "repeat.md"
    page.write_text("# Notes\n\n## Notes\n\n[first](#notes) [second](#notes-1)\n")
    assert check_links(docs_copy).returncode == 0
    page.write_text(page.read_text() + "[third](#notes-2)\n")
    assert check_links(docs_copy).returncode == 1


def test_readme_is_short():
    assert len((REPO / "README.md").read_text().splitlines()) <= 300
