"""The front door stays whole: every relative link and anchor of README.md and docs/*.md
resolves (scripts/check_links.py passes on the repository, and fails, naming the link, on
a copy with a broken file link or a broken anchor); anchors are GitHub's heading slugs; the
README stays at most 300 lines; every public name of ``ilias_rerank.__all__`` has a
docstring that names its parameters, with numpy-style Parameters / Returns / Raises
sections for the functions (the source of the API reference, scripts/api_docs.sh)."""

from __future__ import annotations

import inspect
import re
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


# --- The API reference's source: every public name's docstring -------------------------

#: Names whose docstrings are not written yet (none).
DOCSTRINGS_PENDING: set[str] = set()


def _section(doc: str, title: str) -> bool:
    """Whether a numpy-style section (``Title`` underlined with dashes) is present."""
    return re.search(rf"^{title}\n-{{3,}}$", doc, re.M) is not None


def _parameters(obj) -> list[str]:
    """The named parameters a user passes (no ``self``, ``*args``, ``**kwargs``)."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):  # builtins without a signature
        return []
    skip = {"self", "args", "kwargs"}
    return [name for name in signature.parameters if name not in skip]


def _public_names() -> list[str]:
    import ilias_rerank

    return [name for name in ilias_rerank.__all__ if name != "__version__"]


@pytest.mark.parametrize("name", _public_names())
def test_public_name_is_documented(name: str):
    """Each public name has a docstring; each parameter is named in it; functions have
    Parameters (when they take any), Returns and Raises sections; classes that take
    arguments have a Parameters or Attributes section."""
    import ilias_rerank

    if name in DOCSTRINGS_PENDING:
        pytest.xfail("store/single.py is rewritten in issue 15")
    obj = getattr(ilias_rerank, name)
    doc = inspect.getdoc(obj) or ""
    assert doc.strip(), f"{name} has no docstring"
    if inspect.ismodule(obj):
        return
    is_error = inspect.isclass(obj) and issubclass(obj, BaseException)
    if is_error and "__init__" not in vars(obj):
        return  # the message is its only argument
    params = _parameters(obj)
    missing = [p for p in params if not re.search(rf"\b{re.escape(p)}\b", doc)]
    assert not missing, f"{name}: parameters not described in its docstring: {missing}"
    if is_error:
        return
    if inspect.isclass(obj):
        if params:
            assert _section(doc, "Parameters") or _section(doc, "Attributes"), name
        return
    if params:
        assert _section(doc, "Parameters"), f"{name}: no Parameters section"
    assert _section(doc, "Returns"), f"{name}: no Returns section"
    assert _section(doc, "Raises"), f"{name}: no Raises section"
