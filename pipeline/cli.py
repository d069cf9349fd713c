"""``scenetag`` command line: argv → config → run → exit code.

The only module that sets up logging and turns errors into one-line
messages. Exit codes: 0 every input ok; 1 some input failed (the others are
still written); 2 usage, config or model error (nothing was processed).
Tracebacks appear only with ``--debug``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.types import PipelineError

log = logging.getLogger("scenetag")

app = typer.Typer(
    name="scenetag",
    help="Tag scenes in videos with CLIP: sampled frames → zero-shot scores → timestamped tags.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

EXIT_OK, EXIT_INPUT_FAILED, EXIT_USAGE = 0, 1, 2

# Options shared by several commands.
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config (see configs/).",
                                                 dir_okay=False)]
ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="Hub id or local model folder.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only print errors.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Verbose logs and full tracebacks.")]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda, cuda:N.")]


@app.command()
def run(
    inputs: Annotated[list[str], typer.Argument(help="Video/image files, folders, globs or .txt lists.")],
    config: ConfigOpt = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder.")] = Path("reports"),
    model: ModelOpt = None,
    revision: Annotated[str | None, typer.Option(help="Model revision (Hub branch/commit).")] = None,
    labels: Annotated[str | None, typer.Option(
        help="Comma-separated labels, replacing the config's.")] = None,
    mode: Annotated[str | None, typer.Option(help="Scoring: softmax or binary.")] = None,
    every_seconds: Annotated[float | None, typer.Option(help="Sample one frame every S seconds.")] = None,
    every_n_frames: Annotated[int | None, typer.Option(help="Sample every n-th frame.")] = None,
    fps: Annotated[float | None, typer.Option(help="Sample at this many frames per second.")] = None,
    max_frames: Annotated[int | None, typer.Option(help="Stop after this many frames per input.")] = None,
    decoder: Annotated[str | None, typer.Option(help="Decoder backend: pyav or decord.")] = None,
    decode_strategy: Annotated[str | None, typer.Option(help="auto, exact, fast or keyframes.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Per-input decode stall timeout, seconds.")] = None,
    device: DeviceOpt = None,
    precision: Annotated[str | None, typer.Option(help="auto, fp32, fp16 or bf16.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Frames per model call (default: auto).")] = None,
    formats: Annotated[str | None, typer.Option(
        help="Comma-separated: csv,plot,json,html,vtt,edl,thumbs (default all but thumbs).")] = None,
    top_frames: Annotated[int | None, typer.Option(
        "--top-frames", min=0, help="Save the N best frames per label as JPEGs (top_frames/).")] = None,
    engine: Annotated[str, typer.Option(help="local or ray.")] = "local",
    ray_address: Annotated[str | None, typer.Option(
        help="Ray cluster address (auto, ray://host:10001).")] = None,
    ray_actors: Annotated[int | None, typer.Option(help="Ray embedding actors (default: one per GPU).",
                                                   min=1)] = None,
    resume: Annotated[bool, typer.Option(help="Skip inputs already finished with the same config.")] = False,
    store: Annotated[Path | None, typer.Option("--store", help="Embedding store (default OUTPUT/store).",
                                               file_okay=False)] = None,
    no_store: Annotated[bool, typer.Option("--no-store", help="Do not store embeddings.")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache",
                                           help="Decode even inputs already in the store.")] = False,
    store_wait: Annotated[float | None, typer.Option(
        "--store-wait", min=0, help="Seconds a store write waits for another run writing the "
        "same store (default 300).")] = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Classify sampled frames of each input and write reports per input."""
    overrides = {
        "model.id": model, "model.revision": revision, "model.device": device,
        "model.precision": precision, "model.batch_size": batch_size,
        "scoring.mode": mode, "decoder.backend": decoder, "decoder.strategy": decode_strategy,
        "decoder.timeout_s": timeout, "sampling.max_frames": max_frames,
        "labels": _label_list(labels), "output.formats": _csv_list(formats),
        "output.top_frames": top_frames,
        **_sampling_overrides(every_seconds, every_n_frames, fps),
    }

    def job() -> int:
        from pipeline.config import load_config
        from pipeline.run import RunOptions, run_job

        cfg = load_config(_config_path(config, labels), overrides)
        options = RunOptions(engine=engine, ray_address=ray_address, ray_actors=ray_actors, resume=resume,
                             progress=not quiet, store=store, use_store=not no_store,
                             use_cache=not no_cache, store_wait_s=store_wait)
        result = run_job(inputs, cfg, output, options)
        _print_run_summary(result, output, quiet)
        return result.exit_code

    raise typer.Exit(_guarded(job, quiet=quiet, debug=debug))


@app.command("download-model")
def download_model(
    model: Annotated[str, typer.Argument(help="Hub id, e.g. openai/clip-vit-base-patch32.")]
    = "openai/clip-vit-base-patch32",
    revision: Annotated[str | None, typer.Option(help="Branch or commit.")] = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Fetch a model into the Hugging Face cache, for later offline runs."""

    def job() -> int:
        from pipeline.embed import download

        folder = download(model, revision=revision)
        typer.echo(f"{model} is cached at {folder}; set HF_HUB_OFFLINE=1 to run without network.")
        return EXIT_OK

    raise typer.Exit(_guarded(job, quiet=quiet, debug=debug))


@app.command("report")
def report_cmd(
    folder: Annotated[Path, typer.Argument(help="A `scenetag run` output folder, or one input's folder.",
                                           exists=True, file_okay=False)],
    formats: Annotated[str | None, typer.Option(help="Comma-separated: html,vtt,edl,thumbs.")] = None,
    top_frames: Annotated[int, typer.Option("--top-frames", min=0,
                                            help="Also save the N best frames per label.")] = 0,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Rewrite HTML reports and exports from a run's files; loads no model."""

    def job() -> int:
        from pipeline.report.html import regenerate

        results = regenerate(folder, _csv_list(formats), top_frames=top_frames)
        if not quiet:
            typer.echo(f"scenetag: {len(results)} reports rewritten in {folder}/", err=True)
        return EXIT_OK

    raise typer.Exit(_guarded(job, quiet=quiet, debug=debug))


StoreOpt = Annotated[Path, typer.Option("--store", help="Embedding store folder (from `scenetag run`).",
                                         file_okay=False)]
StoreModelOpt = Annotated[str | None, typer.Option(
    "--model", "-m", help="Model for queries (default: the one the store was built with).")]
SamplingOpt = Annotated[str | None, typer.Option(
    "--sampling", help="Only inputs stored with this sampling, e.g. 'every 0.5 s' "
    "(default: all; a frame stored twice counts once).")]


@app.command()
def rescore(
    config: ConfigOpt = None,
    store: StoreOpt = Path("reports/store"),
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder.")] = Path("reports/rescore"),
    model: StoreModelOpt = None,
    device: DeviceOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Re-score stored embeddings with a new config's labels; never decodes."""

    def job() -> int:
        from pipeline.config import load_config
        from pipeline.run import rescore_job

        cfg = load_config(_config_path(config, None), {"model.device": device})
        result = rescore_job(cfg, store, output, model=model)
        _print_run_summary(result, output, quiet)
        return result.exit_code

    raise typer.Exit(_guarded(job, quiet=quiet, debug=debug))


@app.command()
def search(
    query: Annotated[str | None, typer.Argument(help='Text query, e.g. "a coffee cup".')] = None,
    store: StoreOpt = Path("reports/store"),
    image: Annotated[Path | None, typer.Option("--image", help="Query with an image file instead.",
                                               dir_okay=False)] = None,
    top: Annotated[int, typer.Option("--top", "-k", min=1, help="Number of results.")] = 10,
    video: Annotated[str | None, typer.Option(help="Only this input (path, file name or stem).")] = None,
    sampling: SamplingOpt = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Folder for search.csv/png (default: the store's parent).")] = None,
    model: StoreModelOpt = None,
    device: DeviceOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Find the stored frames closest to a text or image query."""

    def job() -> int:
        from pipeline import search as s
        from pipeline.store import EmbeddingStore

        if (query is None) == (image is None):
            raise PipelineError("give a text QUERY or --image FILE (one of them)")
        db = EmbeddingStore.open(store)
        vector = s.query_vector(db, lambda: _store_embedder(db, model, device), query, image,
                                cached=model in (None, db.model_id))
        hits = s.search(db, vector, top_k=top, video=video, sampling=sampling)
        out = output or store.parent
        out.mkdir(parents=True, exist_ok=True)
        s.write_csv(hits, out)
        s.write_contact_sheet(hits, out, title=f"search: {query or image.name}")
        if not quiet:
            typer.echo(s.format_table(hits))
            typer.echo(f"scenetag: {len(hits)} results; {out}/search.csv, {out}/search.png", err=True)
        return EXIT_OK

    raise typer.Exit(_guarded(job, quiet=quiet, debug=debug))


@app.command()
def cluster(
    store: StoreOpt = Path("reports/store"),
    k: Annotated[int | None, typer.Option("--k", min=1,
                                          help="KMeans clusters (default: auto by silhouette).")] = None,
    dbscan: Annotated[bool, typer.Option("--dbscan", help="Use DBSCAN (cosine) instead of KMeans.")] = False,
    eps: Annotated[float, typer.Option("--eps", min=0.0, help="DBSCAN radius in cosine distance.")] = 0.1,
    min_samples: Annotated[int, typer.Option("--min-samples", min=1, help="DBSCAN core neighbourhood.")] = 3,
    outliers: Annotated[int, typer.Option("--outliers", min=0,
                                          help="KMeans: frames to flag as outliers.")] = 10,
    video: Annotated[str | None, typer.Option(help="Only this input (path, file name or stem).")] = None,
    sampling: SamplingOpt = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Folder for clusters.csv/png (default: the store's parent).")] = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Cluster stored frames; write clusters.csv, outliers.csv, clusters.png and clusters.html."""

    def job() -> int:
        from pipeline import cluster as c
        from pipeline.search import select_videos
        from pipeline.store import EmbeddingStore

        if dbscan and k is not None:
            raise PipelineError("give --k or --dbscan, not both")
        db = EmbeddingStore.open(store)
        rows = db.frames(select_videos(db, video=video, sampling=sampling), unique=True)
        result = c.cluster(rows.vectors, k=k, dbscan_eps=eps if dbscan else None,
                           min_samples=min_samples, outliers=outliers)
        out = output or store.parent
        out.mkdir(parents=True, exist_ok=True)
        c.write_outputs(rows, result, out)
        if not quiet:
            typer.echo(f"scenetag: {len(rows)} frames, {result.method}: {result.k} clusters, "
                       f"{int(result.is_outlier.sum())} outliers; {out}/clusters.csv", err=True)
        return EXIT_OK

    raise typer.Exit(_guarded(job, quiet=quiet, debug=debug))


# --------------------------------------------------------------------------- helpers


def _store_embedder(db: Any, model: str | None, device: str | None) -> Any:
    """The store's model (or ``model``, which must have the same dimension)."""
    from pipeline.embed import load_embedder

    revision = None if model or (db.model_revision or "").startswith("sha256:") else db.model_revision
    embedder = load_embedder(model or db.model_id, revision=revision, device=device or "auto")
    db.check_model(embedder.model_id, embedder.revision, embedder.dim, same_model=model is None)
    return embedder



def _guarded(job: Callable[[], int], *, quiet: bool, debug: bool) -> int:
    """Run a command body: set up logging, map errors to one line + exit code."""
    _setup_logging(quiet=quiet, debug=debug)
    try:
        return job()
    except PipelineError as ex:
        log.debug("failed", exc_info=True)
        _error(str(ex))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _error("interrupted; finished inputs are complete, rerun with --resume to continue")
        return 130
    except Exception as ex:  # the last line of defence: no traceback without --debug
        if debug:
            raise
        _error(f"internal error: {type(ex).__name__}: {ex} (rerun with --debug for details)")
        return 3


def _error(message: str) -> None:
    typer.echo(f"scenetag: error: {' '.join(message.split())}", err=True)


class _OneLine(logging.Formatter):
    """``scenetag: error: <message>`` — one line per record, no traceback
    unless the handler is in debug mode."""

    def __init__(self, debug: bool) -> None:
        super().__init__()
        self.debug = debug

    def format(self, record: logging.LogRecord) -> str:
        text = f"scenetag: {record.levelname.lower()}: {' '.join(record.getMessage().split())}"
        if self.debug and record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def _setup_logging(*, quiet: bool, debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine(debug))
    handler.set_name("scenetag-cli")
    root = logging.getLogger()
    # Replace only our own handler: tests and embedding apps keep theirs.
    root.handlers[:] = [h for h in root.handlers if h.get_name() != "scenetag-cli"] + [handler]
    root.setLevel(logging.DEBUG if debug else logging.ERROR if quiet else logging.WARNING)
    for noisy in ("urllib3", "filelock", "huggingface_hub", "transformers", "libav", "PIL"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.ERROR)
    if not debug:
        _silence_libraries()


def _silence_libraries() -> None:
    import os
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_VERBOSITY", "error")  # read when huggingface_hub is imported
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _config_path(config: Path | None, labels: str | None) -> Path | None:
    """With neither a config nor --labels, the packaged default config applies."""
    if config is not None or labels:
        return config
    from pipeline.config import DEFAULT_CONFIG_PATH

    return DEFAULT_CONFIG_PATH


def _label_list(labels: str | None) -> list[dict[str, Any]] | None:
    if not labels:
        return None
    return [{"name": name.strip()} for name in labels.split(",") if name.strip()]


def _csv_list(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _sampling_overrides(every_seconds: float | None, every_n_frames: int | None,
                        fps: float | None) -> dict[str, Any]:
    """A sampling flag replaces the config's rule instead of adding a second one."""
    given = {"sampling.every_seconds": every_seconds, "sampling.every_n_frames": every_n_frames,
             "sampling.fps": fps}
    if all(v is None for v in given.values()):
        return {}
    from pipeline.config import UNSET

    return {key: value if value is not None else UNSET for key, value in given.items()}


def _print_run_summary(result: Any, output: Path, quiet: bool) -> None:
    if quiet:
        return
    ok = sum(r.status == "ok" for r in result.results)
    failed = len(result.results) - ok
    parts = [f"{ok} ok"] + ([f"{failed} failed"] if failed else []) + \
        ([f"{result.skipped} resumed"] if result.skipped else []) + \
        ([f"{len(result.images)} images"] if result.images else [])
    typer.echo(f"scenetag: {', '.join(parts)}; reports in {output}/ (index.csv)", err=True)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
