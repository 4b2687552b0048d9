"""``ilias-rerank``: the retrieval pipeline from the command line.

    ilias-rerank run                                   # embedded demo dataset, no files needed
    ilias-rerank run --dataset smvs --root ../shared/data/smvs_dvd_covers \\
        --distractors ../shared/data/roxford_rparis_pixel_subset
    ilias-rerank run --dataset roxford-subset --root ../shared/data/roxford_rparis_pixel_subset
    ilias-rerank run --dataset pairs --root ../shared/data/homogr_evd
    ilias-rerank rerank-shortlists --shortlists knn.json --images tars/ --store feats/ \\
        --out reranked.json [-k 100] [--ray [ADDRESS]] [--workers N]

    ilias-rerank store check|repair|merge STORE        # a sharded store's health

Steps one at a time (same options): ``extract``, ``index``, ``search``, ``rerank``,
``evaluate [--similarities FILE]``, ``show --query ID``. Every step keeps its outputs in
``--workdir`` (default ``out/<dataset>``) and resumes from them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ._io import atomic_write_json
from .config import RerankConfig
from .datasets import DATASETS, load_dataset
from .errors import ConfigError, FailureBudgetError, IliasRerankError, InvalidInputError
from .pipeline import DEFAULT_GLOBAL, GLOBAL_MODELS, Workspace
from .reranker import load_similarities

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dataset", choices=DATASETS, default="demo")
    common.add_argument("--root", type=Path, help="dataset folder (all but demo)")
    common.add_argument(
        "--distractors",
        type=Path,
        nargs="*",
        default=[],
        help="smvs: folders whose images join the database as distractors",
    )
    common.add_argument("--gt", type=Path, help="folder: ground-truth TSV (default ROOT/gt.tsv)")
    common.add_argument("--query-features", type=Path, help="ilias: query HDF5 features")
    common.add_argument("--db-features", type=Path, help="ilias: database HDF5 features")
    common.add_argument("--workdir", type=Path, help="outputs (default out/<dataset>)")
    common.add_argument(
        "--global",
        dest="global_model",
        choices=GLOBAL_MODELS,
        default=DEFAULT_GLOBAL,
        help="global embedding for the shortlist",
    )
    common.add_argument("--features", type=int, default=1024, help="local features per image")
    common.add_argument(
        "--method", default="sift", help="local features: sift, aliked, disk or xfeat"
    )
    _extraction_arguments(common)
    common.add_argument("-k", type=int, default=100, help="shortlist length re-ranked")
    common.add_argument(
        "--expansion",
        type=int,
        default=0,
        help="query expansion with the top N global neighbours (0: off)",
    )
    common.add_argument(
        "--config",
        type=str,
        default=None,
        help="re-ranking settings as JSON, e.g. '{\"ratio\": 0.8}'",
    )
    common.add_argument(
        "--json", type=Path, help="run, evaluate: write the metrics report here as well"
    )
    common.add_argument("--no-progress", action="store_true")

    parser = argparse.ArgumentParser(prog="ilias-rerank", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", parents=[common], help="every step, then the before/after table")
    for name, text in (
        ("extract", "local features into feature stores"),
        ("index", "global embeddings"),
        ("search", "global shortlists -> global.json"),
        ("rerank", "re-rank the shortlists -> reranked.json"),
        ("evaluate", "metrics of global.json / reranked.json or a file"),
    ):
        p = sub.add_parser(name, parents=[common], help=text)
        if name == "evaluate":
            p.add_argument(
                "--similarities", type=Path, help="a .json/.npz similarity file to score instead"
            )
    _shortlist_parser(sub)
    _store_parser(sub)
    _vocabulary_parser(sub)
    show = sub.add_parser("show", parents=[common], help="PNG pictures of one query")
    show.add_argument("--query", help="query id (default: the first)")
    show.add_argument("--top", type=int, default=8)
    sub.choices["run"].add_argument(
        "--pictures", type=int, default=3, help="queries drawn as PNG (default 3)"
    )
    report = sub.add_parser(
        "report",
        parents=[common],
        help="the HTML report of a run's work directory -> WORKDIR/report.html",
    )
    for p in (report, sub.choices["run"]):
        if p is sub.choices["run"]:
            p.add_argument(
                "--report", action="store_true", help="also write the HTML report (report.html)"
            )
        _report_arguments(p)
    return parser


def _report_arguments(p) -> None:
    p.add_argument("--report-top", type=int, default=10, help="report: candidates per row (10)")
    p.add_argument(
        "--match-pictures",
        type=int,
        default=5,
        help="report: re-ranked candidates per query with a match picture (5)",
    )


def _extraction_arguments(p, workers: bool = True) -> None:
    p.add_argument(
        "--backend",
        default=None,
        help="how SIFT is computed: rust (the default, the package's own, numpy only; also "
        "on a GPU until a recorded GPU run says otherwise), opencv (OpenCV's SIFT on Pillow's "
        "pixels: the same features), kornia (batched on a GPU) or kornia-rs",
    )
    p.add_argument("--device", default="cpu", help="extraction device: cpu, cuda, cuda:N")
    if workers:
        p.add_argument(
            "--workers",
            type=int,
            default=None,
            help="extraction workers: threads of this process (default: every usable core)",
        )
    p.add_argument(
        "--isolate",
        action="store_true",
        help="extract in separate worker processes (an image that crashes its process "
        "fails alone) instead of threads",
    )


def _shortlist_parser(sub) -> None:
    p = sub.add_parser(
        "rerank-shortlists",
        help="re-rank a kNN shortlist file (ILIAS JSON / pickle / npz) by local features",
        description="Extract local features only for the images the shortlists need (into a "
        "sharded store, resumably), re-rank every query's top k, write one result file.",
    )
    p.add_argument("--shortlists", type=Path, required=True, help="ILIAS .json, .pkl or .npz")
    p.add_argument(
        "--images",
        action="append",
        help="a folder, a TSV of id<TAB>path, a .tar, a folder or glob of .tar files; "
        "repeat it to look in several (the queries' folder, then the distractors' tars); "
        "required unless --method store",
    )
    p.add_argument("--store", type=Path, required=True, help="the (sharded) feature store")
    p.add_argument("--out", type=Path, required=True, help="result file: .json, .npz or .pkl")
    p.add_argument("-k", type=int, default=100, help="top k of each shortlist re-ranked")
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run on Ray: alone, a local Ray; with an address, join that cluster",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="extraction threads (or worker processes with --isolate) and re-ranking "
        "threads, or Ray actors (default: every usable core here; with --ray: 1)",
    )
    p.add_argument(
        "--method",
        default="sift",
        help="local features: sift, aliked, disk, xfeat; or store: re-rank the features the "
        "store holds, whatever made them, and extract nothing",
    )
    _extraction_arguments(p, workers=False)
    p.add_argument("--features", type=int, default=1024, help="local features per image")
    p.add_argument(
        "--max-side",
        type=int,
        default=None,
        help="longest image side extracted (default: the backend's, 768 for OpenCV SIFT, "
        "1024 for the others)",
    )
    p.add_argument("--batch-size", type=int, default=256, help="images per extraction batch")
    p.add_argument(
        "--codes",
        nargs="?",
        const="shipped",
        default=None,
        metavar="VOCABULARY",
        help="store codes (visual words + signatures, issue 22) instead of descriptors: "
        "quantised with the shipped vocabulary, or with VOCABULARY.npz (ilias-rerank "
        "vocabulary train); the store is re-ranked by quantised matching",
    )
    p.add_argument("--config", type=str, default=None, help="re-ranking settings as JSON")
    p.add_argument("--trust-pickle", action="store_true", help="allow reading a .pkl file")
    p.add_argument(
        "--max-failed",
        type=_failure_budget,
        default=0.01,
        help="failed images allowed: a count (10), a percentage (1%%) or a fraction (0.01, "
        "the default) of the images the job needs; beyond it the job exits with status 3 "
        "(within it, with status 4 when any failed: the output is then incomplete)",
    )
    p.add_argument(
        "--no-merge", action="store_true", help="leave the store's small shards unmerged"
    )
    p.add_argument("--merge-size", type=_size, default="1G", help="bytes per merged shard (1G)")
    p.add_argument(
        "--lock-timeout",
        type=float,
        default=0.0,
        help="seconds to wait when another job writes the store (default: fail at once)",
    )
    p.add_argument("--json", type=Path, help="write the summary with timings here")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--report",
        action="store_true",
        help="also write the HTML report beside --out (<out stem>.report.html)",
    )
    _report_arguments(p)


def _failure_budget(text: str) -> int | float:
    try:
        if text.endswith("%"):
            value: int | float = float(text[:-1]) / 100.0
        elif "." in text or "e" in text.lower():
            value = float(text)
        else:
            value = int(text)
    except ValueError:
        value = -1
    if (isinstance(value, float) and not 0.0 <= value <= 1.0) or (
        isinstance(value, int) and value < 0
    ):
        raise argparse.ArgumentTypeError(
            f"expected a count >= 0, a percentage or a fraction in [0, 1], got {text!r}"
        )
    return value


def _size(text: str) -> int:
    """``123``, ``64K``, ``512M``, ``2G`` -> bytes."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = t[-1:] if t[-1:] in units else ""
    number = t[: len(t) - len(unit)]
    try:
        return int(float(number) * units[unit])
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(
            f"expected a size such as 512M or 2G, got {text!r}"
        ) from None


def _store_parser(sub) -> None:
    p = sub.add_parser(
        "store",
        help="check, repair or merge a sharded feature store",
        description="check: list orphan, duplicate, damaged and changed shards, changing "
        "nothing (exit 1 if any); repair: make the store openable again without losing an "
        "image an intact shard holds, and say what was done; merge: rewrite small shards "
        "into few large ones, atomically.",
    )
    p.add_argument("action", choices=("check", "repair", "merge"))
    p.add_argument("path", type=Path, help="the sharded store directory")
    p.add_argument(
        "--target-size", type=_size, default="1G", help="merge: bytes per merged shard (1G)"
    )
    p.add_argument("--quick", action="store_true", help="check: skip the per-image checksums")
    p.add_argument(
        "--lock-timeout",
        type=float,
        default=0.0,
        help="repair, merge: seconds to wait for another writer (default: fail at once)",
    )


def _vocabulary_parser(sub) -> None:
    p = sub.add_parser(
        "vocabulary",
        help="train a vocabulary for quantised matching from a feature store",
        description="train: an inverted multi-index (2 x 256 words) and Hamming-Embedding "
        "signatures from the RootSIFT descriptors of a store (ilias_rerank.codes).",
    )
    p.add_argument("action", choices=("train",))
    p.add_argument("store", type=Path, help="a single or sharded feature store")
    p.add_argument("--out", type=Path, required=True, help="the vocabulary file (.npz)")
    p.add_argument("--max-descriptors", type=int, default=200_000)
    p.add_argument("--per-image", type=int, default=4096)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")


def _vocabulary(args) -> int:
    from .codes.train import train_from_store

    voc = train_from_store(
        args.store,
        max_descriptors=args.max_descriptors,
        per_image=args.per_image,
        seed=args.seed,
        progress=not args.no_progress,
    )
    voc.save(args.out)
    print(json.dumps({"vocabulary": voc.name, "out": str(args.out), **json.loads(voc.trained_on)}))
    return 0


def _store(args) -> int:
    from .store import check_store, merge_store, repair_store

    if args.action == "check":
        report = check_store(args.path, verify_images=not args.quick)
        print(report)
        return 0 if report.ok else 1
    if args.action == "repair":
        report = repair_store(args.path, lock_timeout=args.lock_timeout)
    else:
        report = merge_store(
            args.path, target_bytes=args.target_size, lock_timeout=args.lock_timeout
        )
    print(report)
    return 0


def _config(text: str | None) -> RerankConfig | None:
    if not text:
        return None
    settings = json.loads(text)
    if not isinstance(settings, dict):
        raise ConfigError(f"--config: expected a JSON object, got {text!r}")
    try:
        return RerankConfig(**settings)
    except TypeError as exc:  # unknown keys
        raise ConfigError(f"--config: {exc}") from None


def _rerank_shortlists(args) -> dict:
    from .extractors.pool import usable_cores
    from .scale import rerank_shortlists
    from .scale.extraction import ExtractorSpec

    if args.report and not args.images:
        raise InvalidInputError("rerank-shortlists --report: expected --images (thumbnails)")
    if args.codes is not None and args.method == "store":
        raise InvalidInputError(
            "rerank-shortlists: --codes quantises what is extracted; --method store extracts "
            "nothing (it re-ranks the store's codes or features as they are)"
        )
    if not args.images and args.method != "store":
        raise InvalidInputError(
            "rerank-shortlists: expected --images (where to read what the store lacks), "
            "got none (only --method store extracts nothing and needs no images)"
        )
    images = args.images or []
    workers = args.workers
    if workers is None:  # every core here; one Ray actor or one GPU process unless asked
        workers = 1 if args.ray is not None or args.device != "cpu" else usable_cores()
    summary = rerank_shortlists(
        args.shortlists,
        images if len(images) != 1 else images[0],
        args.store,
        args.out,
        k=args.k,
        workers=workers,
        ray=args.ray is not None,
        ray_address=args.ray or None,
        extractor=None
        if args.method == "store"
        else ExtractorSpec(
            args.method,
            args.features,
            args.max_side,
            args.device,
            backend=args.backend,
            codes=args.codes,
        ),
        config=_config(args.config),
        batch_size=args.batch_size,
        trust_pickle=args.trust_pickle,
        progress=False if args.no_progress else None,
        max_failed=args.max_failed,
        merge=not args.no_merge,
        merge_target_bytes=args.merge_size,
        lock_timeout=args.lock_timeout,
        isolate=args.isolate,
    )
    _print_summary(summary, args)
    if args.report:
        from .report.shortlists import shortlist_job_report

        page = shortlist_job_report(
            args.shortlists,
            args.out,
            args.store,
            images,
            config=_config(args.config),
            top=args.report_top,
            match_pictures=args.match_pictures,
            trust_pickle=args.trust_pickle,
            summary=summary,
            progress=not args.no_progress,
        )
        print(f"report: {page}")
    return summary


def _print_summary(summary: dict, args) -> None:
    print(
        f"rerank-shortlists: {summary['queries']} queries ({summary['queries_reranked']} "
        f"re-ranked); ids needed {summary['ids_needed']} / extracted {summary['extracted']} / "
        f"reused {summary['reused']} / failed {summary['failed']}; {summary['pairs']} pairs "
        f"at {summary['pairs_per_s']:.0f} pairs/s ({summary['backend']}, "
        f"{summary['workers']} workers) -> {summary['out']}"
    )
    if summary["failed"]:
        print(f"failed images: {summary['failures']}")
    if summary.get("merge_refused"):
        print(f"store not merged: {summary['merge_refused']}", file=sys.stderr)
    if args.json:
        atomic_write_json(args.json, summary)


def _workspace(args) -> Workspace:
    options = {}
    if args.dataset == "smvs" and args.distractors:
        options["distractors"] = [
            p for d in args.distractors for p in sorted(Path(d).rglob("*.jpg"))
        ]
    if args.dataset == "folder" and args.gt:
        options["gt_tsv"] = args.gt
    if args.dataset == "ilias":
        options.update(query_features=args.query_features, database_features=args.db_features)
    dataset = load_dataset(args.dataset, args.root, **options)
    config = _config(args.config)
    return Workspace(
        dataset,
        args.workdir or Path("out") / args.dataset,
        num_features=args.features,
        method=args.method,
        backend=args.backend,
        device=args.device,
        workers=args.workers,
        isolate=args.isolate,
        global_model=args.global_model,
        k=args.k,
        config=config,
        progress=not args.no_progress,
        expansion=args.expansion,
    )


def _table(report: dict) -> str:
    keys = [k for k in ("map", "top1", "p@5", "ndcg", "mrr") if k in report["global"]]
    lines = [f"{'':14s}" + "".join(f"{k:>9s}" for k in keys)]
    for row in ("global", "reranked"):
        lines.append(f"{row:14s}" + "".join(f"{report[row][k]:9.3f}" for k in keys))
    t = report["timing"]
    lines.append(
        f"\n{report['dataset']}: {report['queries_evaluated']} queries, global = "
        f"{report['global_model']}, top {report['k']} re-ranked at "
        f"{t.get('rerank_pairs_per_s', 0):.0f} pairs/s"
    )
    for key in ("localisation", "localisation_5_inliers"):
        if key in report:
            loc = report[key]
            lines.append(
                f"localisation: {loc['iou_ge_threshold']:.2f} of {loc['verified_positives']} "
                f"positives verified with >= {loc['min_inliers']} inliers have IoU >= 0.3 "
                "with the ground-truth polygon"
            )
    return "\n".join(lines)


def show(
    ws: Workspace,
    query: str | None,
    top: int = 8,
    global_sims: dict | None = None,
    reranked: dict | None = None,
) -> list[Path]:
    """Pictures of one query; the similarities are read from the work directory unless
    given."""
    from .pictures import draw_rankings, match_picture

    ds = ws.dataset
    if global_sims is None:
        global_sims = load_similarities(ws.workdir / "global.json")
    if reranked is None:
        reranked = load_similarities(ws.workdir / "reranked.json")
    q = query or next(iter(reranked))
    if q not in reranked:
        raise IliasRerankError(f"query {q!r}: not in {ws.workdir / 'reranked.json'}")
    before, after = list(global_sims[q])[:top], list(reranked[q])[:top]
    positives = ds.positives.get(q, set())
    safe = q.replace("/", "_")
    out = [
        draw_rankings(
            ds.queries[q],
            [
                (
                    f"global ({ws.global_model})",
                    [ds.database[d] for d in before],
                    [d in positives for d in before],
                ),
                ("re-ranked", [ds.database[d] for d in after], [d in positives for d in after]),
            ],
            ws.workdir / "pictures" / f"{safe}_ranking.png",
        )
    ]
    db, queries = ws.extract()
    best = after[0]
    picture, _ = match_picture(
        ds.queries[q],
        ds.database[best],
        queries[q],
        db[best],
        ws.workdir / "pictures" / f"{safe}_matches.png",
        config=ws.config,
        title=f"{q} -> {best}",
    )
    out.append(picture)
    return out


def write_run_report(
    ws: Workspace,
    args,
    report: dict | None = None,
    global_sims: dict | None = None,
    reranked: dict | None = None,
) -> Path:
    """``WORKDIR/report.html`` from the work directory's files (or the results given)."""
    from .report import read_verification, write_report

    ds = ws.dataset
    if global_sims is None:
        global_sims = load_similarities(ws.workdir / "global.json")
    if reranked is None:
        reranked = load_similarities(ws.workdir / "reranked.json")
    record = ws.workdir / "verification.npz"
    verification = read_verification(record) if record.is_file() else None
    if report is None:
        report = {"global": ws.evaluate(global_sims), "reranked": ws.evaluate(reranked)}
    db, queries = ws.extract()
    settings = {
        "dataset": ds.name,
        "queries": len(reranked),
        "database": len(ds.database),
        "method": ws.method,
        "features": ws.num_features,
        "global": ws.global_model,
        "k": ws.k,
        "config": (ws.config or RerankConfig()).to_dict(),
        "work directory": str(ws.workdir),
    }
    return write_report(
        ws.workdir / "report.html",
        global_sims,
        reranked,
        query_images=ds.queries,
        db_images=ds.database,
        positives=ds.positives,
        verification=verification,
        query_features=queries,
        db_features=db,
        config=ws.config,
        metrics=report,
        settings=settings,
        top=args.report_top,
        match_pictures=args.match_pictures,
        title=f"ilias-rerank: {ds.name}",
        progress=ws.progress,
    )


#: Exit statuses: 0 done and complete, 1 ``store check`` found problems, 2 an error, 3
#: more failed images than the failure budget, 4 done within the budget but some images
#: failed (the output is incomplete: they keep their global places), 128 + N stopped by
#: signal N (SIGINT 130, SIGTERM 143) after the cleanup ran.
EXIT_INCOMPLETE = 4


class Interrupted(BaseException):
    """SIGTERM or SIGINT: raised in the main thread, so that every ``finally`` (the pool's
    shutdown, the registration of finished shards, the store's lock) runs on the way out."""

    def __init__(self, signum: int) -> None:
        import signal

        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def _on_signals():
    """Handlers that raise :class:`Interrupted` once (a second signal during the cleanup
    is ignored); returns a function that restores the previous ones."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    raised = []

    def handler(signum, _frame):
        if not raised:
            raised.append(signum)
            raise Interrupted(signum)

    saved = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, old in saved.items():
            signal.signal(sig, old)

    return restore


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    restore = _on_signals()
    try:
        return _main(args)
    except Interrupted as exc:
        print(f"ilias-rerank: {exc}; cleaned up (finished work is kept)", file=sys.stderr)
        return 128 + exc.signum
    finally:
        restore()


def _main(args) -> int:
    try:
        if args.command == "rerank-shortlists":
            try:
                summary = _rerank_shortlists(args)
            except FailureBudgetError as exc:
                _print_summary(exc.summary, args)
                print(f"ilias-rerank: error: {exc}", file=sys.stderr)
                return 3
            return 0 if summary["complete"] else EXIT_INCOMPLETE
        if args.command == "store":
            return _store(args)
        if args.command == "vocabulary":
            return _vocabulary(args)
        ws = _workspace(args)
        if args.command == "extract":
            db, queries = ws.extract()
            print(f"stores: {db!r}, {queries!r}")
        elif args.command == "index":
            qv, dv = ws.global_vectors()
            print(f"global embeddings ({ws.global_model}): {qv.shape} queries, {dv.shape} database")
        elif args.command == "search":
            sims = ws.search()
            print(f"{len(sims)} shortlists -> {ws.workdir / 'global.json'}")
        elif args.command == "rerank":
            ws.rerank()
            print(f"re-ranked -> {ws.workdir / 'reranked.json'}")
        elif args.command == "evaluate":
            if args.similarities:
                result = ws.evaluate(load_similarities(args.similarities))
            else:
                g = ws.evaluate(load_similarities(ws.workdir / "global.json"))
                r = ws.evaluate(load_similarities(ws.workdir / "reranked.json"))
                result = {"global": g, "reranked": r}
            print(json.dumps(result, indent=2))
            if args.json:
                atomic_write_json(args.json, result)
        elif args.command == "show":
            for p in show(ws, args.query, args.top):
                print(f"wrote {p}")
        elif args.command == "report":
            print(f"report: {write_run_report(ws, args)}")
        elif args.command == "run":
            global_sims = ws.search()
            reranked, details = ws.rerank(global_sims)
            report = ws.report(global_sims, reranked, details)
            print(_table(report))
            if ws.dataset.name == "demo":
                from .demo import target_lines

                print("\n".join(target_lines(report)))
            pictures = []
            for q in list(reranked)[: args.pictures]:
                pictures += show(ws, q, global_sims=global_sims, reranked=reranked)
            if pictures:
                print(f"pictures: {len(pictures)} PNG in {ws.workdir / 'pictures'}")
            if args.json:
                atomic_write_json(args.json, report)
            if args.report:
                print(f"report: {write_run_report(ws, args, report, global_sims, reranked)}")
        return 0
    except (IliasRerankError, ValueError, KeyError, OSError) as exc:
        print(f"ilias-rerank: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
