"""The HTML report: its verification file, its page and pictures (structure, no browser),
and what a person sees in a real headless Chromium (console, thumbnails, sorting, the
click-through to the match picture, a screenshot under out/)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

import ilias_rerank as ir
from ilias_rerank.cli import main
from ilias_rerank.evaluation import ilias_map
from ilias_rerank.report import read_verification, write_report, write_verification
from ilias_rerank.reranker import load_similarities

REPO = Path(__file__).resolve().parents[1]


def _data(page: Path) -> dict:
    text = page.read_text(encoding="utf-8")
    found = re.search(
        r'<script type="application/json" id="report-data">(.*?)</script>', text, re.S
    )
    assert found, "no embedded data"
    return json.loads(found.group(1))


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The embedded demo, run once with --report (the quickstart's command)."""
    work = tmp_path_factory.mktemp("demo")
    metrics = work / "metrics.json"
    args = ["run", "--workdir", str(work), "--no-progress", "--report", "--pictures", "0"]
    assert main([*args, "--json", str(metrics)]) == 0
    return work, json.loads(metrics.read_text())


def test_the_demo_fails_globally_and_reranking_repairs_it(demo_run, capsys):
    _, report = demo_run
    for key in ("map", "top1"):
        assert report["global"][key] <= 0.80, key
        assert report["reranked"][key] >= report["global"][key] + 0.15, key


def test_verification_file_round_trip_and_bad_files(tmp_path):
    t = np.eye(3) * 2.0
    details = {"q0": {"b": (12, t), "a": (0, None)}, "q1": {"c": (5, None)}}
    back = read_verification(write_verification(tmp_path / "v.npz", details))
    assert list(back) == ["q0", "q1"]
    assert list(back["q0"]) == ["b", "a"]  # global order kept
    assert back["q0"]["b"][0] == 12 and np.allclose(back["q0"]["b"][1], t)
    assert back["q0"]["a"] == (0, None) and back["q1"] == {"c": (5, None)}  # padding dropped
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ir.FormatError, match="not a verification file"):
        read_verification(tmp_path / "bad.npz")
    np.savez(tmp_path / "shape.npz", query_ids=np.array(["q"]), db_ids=np.array(["a"]),
             candidates=np.zeros((1, 2), np.int32), inliers=np.zeros((1, 3), np.int32),
             transforms=np.zeros((1, 2, 3, 3), np.float32))  # fmt: skip
    with pytest.raises(ir.FormatError, match="expected candidates"):
        read_verification(tmp_path / "shape.npz")


def test_demo_report_page_structure(demo_run):
    work, report = demo_run
    page = work / "report.html"
    text = page.read_text(encoding="utf-8")
    data = _data(page)
    reranked = load_similarities(work / "reranked.json")
    global_sims = load_similarities(work / "global.json")
    verification = read_verification(work / "verification.npz")
    from ilias_rerank.datasets import load_dataset

    ds = load_dataset("demo")
    assert [q["id"] for q in data["queries"]] == list(reranked)
    # Nothing fetched from the network: every src/href is a relative file beside the page.
    refs = re.findall(r'(?:src|href)="([^"]*)"', text) + data["thumbs"] + data["matches"]
    assert not [r for r in refs if re.match(r"[a-z]+://", r)]
    for rel in data["thumbs"] + data["matches"]:
        assert (work / rel).is_file() and (work / rel).stat().st_size > 0, rel
    assert data["matches"], "no match picture drawn"
    # Per-query AP as the evaluator computes it; the plot has one point per query.
    aps_g = ilias_map(global_sims, ds.positives).aps
    aps_r = ilias_map(reranked, ds.positives).aps
    for q in data["queries"]:
        assert q["apg"] == pytest.approx(aps_g[q["id"]]) and q["apr"] == pytest.approx(
            aps_r[q["id"]]
        )
        assert [c[5] for c in q["r"]] == list(reranked[q["id"]])[: data["top"]]
        assert [c[5] for c in q["g"]] == list(global_sims[q["id"]])[: data["top"]]
        for c in q["r"] + q["g"]:
            assert c[1] == int(c[5] in ds.positives[q["id"]])  # ground truth marked
            assert c[2] == verification[q["id"]][c[5]][0]  # inliers as recorded
    assert np.mean([q["apr"] for q in data["queries"]]) == pytest.approx(report["reranked"]["map"])
    assert text.count("<circle") == len(data["queries"])
    assert 'id="metrics"' in text and 'id="settings"' in text


def test_report_without_ground_truth_or_features(tmp_path):
    rng = np.random.default_rng(0)
    images = {f"d{i}": rng.integers(0, 255, (40, 60), dtype=np.uint8) for i in range(6)}
    global_sims = {"q": {f"d{i}": 1.0 - i / 10 for i in range(6)}}
    reranked = {"q": {f"d{i}": 1.0 - k / 10 for k, i in enumerate((3, 0, 1, 2, 4, 5))}}
    page = write_report(
        tmp_path / "r.html", global_sims, reranked, query_images={"q": images["d3"]},
        db_images=images, top=4, progress=False,
    )  # fmt: skip
    data = _data(page)
    assert not data["has_gt"] and data["matches"] == []
    (q,) = data["queries"]
    assert q["apg"] is None and [c[5] for c in q["r"]] == ["d3", "d0", "d1", "d2"]
    assert all(c[1] is None and c[2] is None for c in q["r"])
    assert [c[4] for c in q["r"]] == [4, 1, 2, 3]  # global ranks shown on re-ranked candidates
    assert len(data["thumbs"]) == 1 + 4  # the query, d0-d3 (d4, d5 are in no top 4)
    # An image that cannot be read costs its thumbnail (a placeholder), not the report.
    page = write_report(
        tmp_path / "gone.html", global_sims, reranked, query_images={"q": tmp_path / "nope.jpg"},
        db_images=images, top=2, progress=False,
    )  # fmt: skip
    data = _data(page)
    assert len(data["unreadable"]) == 1 and "nope.jpg" in data["unreadable"][0]
    assert all((tmp_path / rel).is_file() for rel in data["thumbs"])
    assert 'id="unreadable"' in page.read_text()
    # Ids are data, never markup: a hostile id stays a string in the page's data.
    odd = "</script><!--<script>&amp;"
    page = write_report(
        tmp_path / "odd.html", {odd: {"d0": 1.0}}, {odd: {"d0": 1.0}},
        query_images={odd: images["d0"]}, db_images=images, progress=False,
    )  # fmt: skip
    assert _data(page)["queries"][0]["id"] == odd
    assert page.read_text().count("</script>") == 2  # the data's and the script's
    # Rankings are read by score, never in the file's key order (a JSON written by hand).
    shuffled = {"q": {f"d{i}": 1.0 - i / 10 for i in (5, 2, 0, 4, 1, 3)}}
    page = write_report(
        tmp_path / "run#1.html", shuffled, reranked, query_images={"q": images["d3"]},
        db_images=images, top=4, progress=False,
    )  # fmt: skip
    data = _data(page)
    (q,) = data["queries"]
    assert [c[5] for c in q["g"]] == ["d0", "d1", "d2", "d3"]
    assert [c[4] for c in q["r"]] == [4, 1, 2, 3]
    # A page name with "#" or "?": its files are linked URL-encoded.
    from urllib.parse import unquote

    assert all("%23" in rel and (tmp_path / unquote(rel)).is_file() for rel in data["thumbs"])
    with pytest.raises(ir.InvalidInputError, match="expected 1 to 100"):
        write_report(tmp_path / "r.html", global_sims, reranked, query_images={},
                     db_images={}, top=0)  # fmt: skip
    with pytest.raises(ir.InvalidInputError, match=r"\.html"):
        write_report(tmp_path / "r.txt", global_sims, reranked, query_images={}, db_images={})


def test_report_subcommand_rewrites_it_from_the_work_directory(demo_run, capsys):
    work, _ = demo_run
    page = work / "report.html"
    page.unlink()
    assert main(["report", "--workdir", str(work), "--no-progress", "--report-top", "5"]) == 0
    assert str(page) in capsys.readouterr().out
    assert _data(page)["top"] == 5


# A real browser -----------------------------------------------------------------------


def _browser():
    from ilias_rerank.report.browser import find_chromium

    exe = find_chromium()
    if exe is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI: no Chromium found (apt-get install chromium; .ci/run installs it)")
        pytest.skip("no Chromium found (apt-get install chromium, or set $CHROMIUM)")
    return exe


def test_report_in_headless_chromium(demo_run):
    from ilias_rerank.report.browser import Chromium

    exe = _browser()
    work, _ = demo_run
    data = _data(work / "report.html")
    with Chromium(exe) as b:
        seconds = b.open(work / "report.html")
        assert b.evaluate("window.reportReady === true")
        # Every thumbnail of the run loads (shown ones made eager, and each file once).
        loaded = b.evaluate(
            """(async () => {
                const shown = [...document.querySelectorAll("#queries img")];
                shown.forEach((i) => { i.loading = "eager"; });
                const all = D_PATHS.map((p) => Object.assign(new Image(), {src: p}));
                const ok = await Promise.all([...shown, ...all].map((i) =>
                    i.decode().then(() => i.naturalWidth > 0, () => false)));
                return [ok.length, ok.filter((x) => !x).length, shown.length];
            })()""".replace("D_PATHS", json.dumps(data["thumbs"]))
        )
        assert loaded[1] == 0, f"{loaded[1]} of {loaded[0]} thumbnails failed to load"
        assert loaded[2] == 20 * (1 + 2 * data["top"])  # a page of 20 queries
        # Sorting: the default is the AP gain, largest first; "worst first" reverses it.
        deltas = "[...document.querySelectorAll('.query')].map((d) => +d.dataset.delta)"
        gains = b.evaluate(deltas)
        assert gains == sorted(gains, reverse=True) and gains[0] > 0.5
        b.evaluate("(() => { const s = document.getElementById('sort'); s.value = 'loss';"
                   " s.dispatchEvent(new Event('change')); })()")  # fmt: skip
        worst = b.evaluate(deltas)
        every = sorted(round(q["apr"] - q["apg"], 9) for q in data["queries"])
        assert [round(x, 9) for x in worst] == every[:20]
        b.evaluate("(() => { const s = document.getElementById('sort'); s.value = 'gain';"
                   " s.dispatchEvent(new Event('change')); })()")  # fmt: skip
        # The click-through opens the match picture of the first re-ranked candidate.
        opened = b.evaluate(
            """(async () => {
                const f = document.querySelector('.query .row.r figure.link');
                f.click();
                const d = document.getElementById('match');
                const img = d.querySelector('img');
                await img.decode();
                return [d.open, img.naturalWidth, img.getAttribute('src'), f.dataset.match];
            })()"""
        )
        assert opened[0] and opened[1] > 0 and opened[2] == opened[3]
        assert opened[2].startswith("report_files/matches/")
        shot = b.screenshot(REPO / "out" / "browser-test" / "report.png")
        b.evaluate("document.getElementById('match').close()")
        b.screenshot(REPO / "out" / "browser-test" / "report-list.png")
        assert b.errors() == []
    print(f"report opened in {seconds:.2f} s; screenshot: {shot}")
    assert shot.stat().st_size > 10_000


def test_rerank_shortlists_writes_its_report_and_verification(tmp_path, capsys):
    from PIL import Image

    from ilias_rerank.demo import hard_shot, load_photos

    photos = load_photos()
    names = list(photos)[:6]
    folder = tmp_path / "images"
    folder.mkdir()
    for n in names:
        Image.fromarray(photos[n]).save(folder / f"{n}.png")
    rng = np.random.default_rng(3)
    others = [photos[n] for n in names[1:4]]
    Image.fromarray(hard_shot(photos[names[0]], others, rng, area=(0.2, 0.2))).save(
        folder / "query.png"
    )
    # The right answer last in the global shortlist.
    knn = {"query": {n: 1.0 - i / 10 for i, n in enumerate(names[1:] + names[:1])}}
    (tmp_path / "knn.json").write_text(json.dumps(knn))
    out = tmp_path / "r.json"
    args = ["rerank-shortlists", "--shortlists", str(tmp_path / "knn.json"), "--images"]
    args += [str(folder), "--store", str(tmp_path / "s"), "--out", str(out), "--no-progress"]
    assert main([*args, "--workers", "1", "--report", "--report-top", "4"]) == 0
    page = tmp_path / "r.report.html"
    assert f"report: {page}" in capsys.readouterr().out
    data = _data(page)
    (q,) = data["queries"]
    assert q["r"][0][5] == names[0] and q["r"][0][4] == 6  # moved from 6th to first
    assert q["r"][0][3] is not None  # its match picture
    recorded = read_verification(tmp_path / "r.json.verification.npz")["query"]
    assert recorded[names[0]][0] == q["r"][0][2] >= 10
    for rel in data["thumbs"] + data["matches"]:
        assert (tmp_path / rel).is_file()
    no_images = [*args[:3], "--store", str(tmp_path / "s"), "--out", str(out), "--no-progress"]
    assert main([*no_images, "--method", "store", "--report"]) == 2
    assert "expected --images" in capsys.readouterr().err


def test_the_report_family_imports_no_torch():
    import subprocess
    import sys

    code = (
        "import sys, ilias_rerank.report.build, ilias_rerank.report.page, "
        "ilias_rerank.report.shortlists, ilias_rerank.report.browser; "
        "print(sorted(m for m in ('torch', 'cv2', 'skimage', 'faiss') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_demo_data_is_seeded_and_has_near_duplicate_distractors():
    from ilias_rerank.datasets import load_dataset

    a, b = load_dataset("demo", views=1), load_dataset("demo", views=1)
    photos = [d for d in a.database if not d.startswith("scrambled/")]
    assert list(a.queries) == list(b.queries) == [f"{p}/view0" for p in photos]
    assert all(np.array_equal(a.queries[q], b.queries[q]) for q in a.queries)
    assert sorted(a.database) == sorted(photos + [f"scrambled/{p}" for p in photos])
    for p in photos:  # a scrambled copy: the photo's pixels, rearranged
        s = a.database[f"scrambled/{p}"]
        assert not np.array_equal(s, a.database[p][: s.shape[0], : s.shape[1]])
        assert abs(float(s.mean()) - float(a.database[p].mean())) < 8
    assert all(a.positives[q] == {q.split("/")[0]} for q in a.queries)
    with pytest.raises(ir.InvalidInputError, match="demo views"):
        load_dataset("demo", views=9)
