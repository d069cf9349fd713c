"""The commands that read an embedding store: ``search``, ``cluster`` and
``serve``, and the store's own model they embed queries with.

``_store_embedder`` loads the model the store was built with (on the runtime
its frames were embedded with), so a query vector is comparable with the
stored ones; only these commands need it. (``rescore`` reads a store too, but
writes a run folder: it is in :mod:`pipeline.cli.commands_run`.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.cli.configs import find_config
from pipeline.cli.messages import EXIT_OK, guarded, plural
from pipeline.cli.options import (
    DebugOpt,
    DeviceOpt,
    QuietOpt,
    RuntimeOpt,
    StoreModelOpt,
    StoreOpt,
    above_zero,
)
from pipeline.types import PipelineError

log = logging.getLogger("scenetag")


SamplingOpt = Annotated[str | None, typer.Option(
    "--sampling", metavar="RULE", help="Only inputs stored with this sampling, e.g. 'every 0.5 s'. "
    "Default: all (a frame stored twice counts once).")]


def search(
    query: Annotated[str | None, typer.Argument(metavar="QUERY", help='Text query, e.g. "a coffee cup".',
                                                callback=_query_text)] = None,
    store: StoreOpt = Path("reports/store"),
    image: Annotated[Path | None, typer.Option("--image", metavar="FILE",
                                               help="Query with an image file instead.",
                                               dir_okay=False)] = None,
    top: Annotated[int, typer.Option("--top", "-k", metavar="N", min=1, help="Number of results.")] = 10,
    video: Annotated[str | None, typer.Option(metavar="INPUT",
                                              help="Only this input (path, file name or stem).")] = None,
    sampling: SamplingOpt = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="DIR",
        help="Folder for search-QUERY.csv, .moments.csv and .png. Default: the store's parent.")] = None,
    reports: Annotated[Path | None, typer.Option(
        "--reports", metavar="DIR", file_okay=False,
        help="Report folders whose NSFW segments blur frames in the contact sheet. "
             "Default: the store's parent.")] = None,
    model: StoreModelOpt = None,
    device: DeviceOpt = None,
    runtime: RuntimeOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Find the stored frames closest to a text or image query, and the moments they lie in."""

    def job() -> int:
        from pipeline.explore import search as s
        from pipeline.serve.library import find_reports, match_reports
        from pipeline.store.db import EmbeddingStore

        if (query is None) == (image is None):
            raise PipelineError("give a text QUERY or --image FILE (one of them)")
        if reports is not None and not reports.is_dir():
            raise PipelineError(f"--reports: no folder {reports}")
        db = EmbeddingStore.open(store)
        vector = s.query_vector(db, lambda: _store_embedder(db, model, device, runtime), query, image,
                                cached=model in (None, db.model_id))
        videos = s.select_videos(db, video=video, sampling=sampling)
        hits = s.search(db, vector, top_k=top, video=video, sampling=sampling)
        moments = s.find_moments(db, vector, hits, videos)
        known = match_reports([v.input_path for v in db.videos()], find_reports(reports or store.parent))
        nsfw = [h.input_path in known and known[h.input_path].nsfw_at(h.time_s) for h in hits]
        out, stem = output or store.parent, s.output_stem(query, image)
        _output_folder(out)
        written = [s.write_csv(hits, out, stem=stem), s.write_moments_csv(moments, out, stem=stem),
                   s.write_contact_sheet(hits, out, title=f"search: {query or image.name}", stem=stem,
                                         nsfw=nsfw)]
        if not quiet:
            typer.echo(s.format_table(hits))
            typer.echo("")
            typer.echo(s.format_moments(moments))
            typer.echo(f"scenetag: {plural(len(hits), 'result')} in {plural(len(moments), 'moment')}; "
                       f"{', '.join(str(p) for p in written)}", err=True)
        return EXIT_OK

    raise typer.Exit(guarded(job, quiet=quiet, debug=debug))


def cluster(
    store: StoreOpt = Path("reports/store"),
    k: Annotated[int | None, typer.Option(
        "--k", metavar="K", min=1, help="KMeans clusters. Default: auto by silhouette.")] = None,
    dbscan: Annotated[bool, typer.Option("--dbscan", help="Use DBSCAN (cosine) instead of KMeans.")] = False,
    eps: Annotated[float | None, typer.Option("--eps", metavar="D", callback=above_zero,
                                              help="With --dbscan: radius in cosine distance. "
                                                   "Default: 0.1.")] = None,
    min_samples: Annotated[int | None, typer.Option("--min-samples", metavar="N", min=1,
                                                    help="With --dbscan: core neighbourhood size. "
                                                         "Default: 3.")] = None,
    outliers: Annotated[int, typer.Option("--outliers", metavar="N", min=0,
                                          help="KMeans: cap on outliers (frames far from their "
                                               "cluster).")] = 10,
    video: Annotated[str | None, typer.Option(metavar="INPUT",
                                              help="Only this input (path, file name or stem).")] = None,
    sampling: SamplingOpt = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="DIR",
        help="Folder for clusters.csv/png. Default: the store's parent.")] = None,
    config: Annotated[str | None, typer.Option(
        "--config", "-c", metavar="FILE|NAME",
        help="Name each cluster by its nearest label or background prompt of this config (in the "
             "legends, with the cosine similarity). Default: clusters are numbered only.")] = None,
    device: DeviceOpt = None,
    runtime: RuntimeOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Cluster stored frames; write clusters.csv, outliers.csv, clusters.png and clusters.html."""

    def job() -> int:
        from pipeline.explore import cluster as c
        from pipeline.explore.cluster_outputs import write_outputs
        from pipeline.explore.search import select_videos
        from pipeline.store.db import EmbeddingStore

        if dbscan and k is not None:
            raise PipelineError("give --k or --dbscan, not both")
        if not dbscan and (eps is not None or min_samples is not None):
            flag = "--eps" if eps is not None else "--min-samples"
            raise PipelineError(f"{flag} applies to DBSCAN only: add --dbscan (without it KMeans runs)")
        db = EmbeddingStore.open(store)
        rows = db.frames(select_videos(db, video=video, sampling=sampling), unique=True)
        result = c.cluster(rows.vectors, k=k, dbscan_eps=(0.1 if eps is None else eps) if dbscan else None,
                           min_samples=3 if min_samples is None else min_samples, outliers=outliers)
        if config is not None:
            from dataclasses import replace

            from pipeline.config import load_config

            names, vectors = c.config_names(load_config(find_config(config)),
                                            _store_texts(db, device, runtime))
            result = replace(result, holds=c.nearest_names(rows.vectors, result.labels, names, vectors))
        out = output or store.parent
        _output_folder(out)
        write_outputs(rows, result, out)
        if not quiet:
            typer.echo(f"scenetag: {plural(len(rows), 'frame')}, {result.method}: "
                       f"{plural(result.k, 'cluster')}, {plural(int(result.is_outlier.sum()), 'outlier')}; "
                       f"{out}/clusters.csv", err=True)
        return EXIT_OK

    raise typer.Exit(guarded(job, quiet=quiet, debug=debug))


# --------------------------------------------------------------------------- config


def serve(
    store: StoreOpt = Path("reports/store"),
    reports: Annotated[Path | None, typer.Option(
        "--reports", metavar="DIR", file_okay=False,
        help="Report folders (`scenetag run -o DIR`) to show: tags, NSFW verdicts, timelines.")] = None,
    host: Annotated[str, typer.Option(metavar="ADDR", help="Address to listen on. Anything but "
                                                           "loopback lets other machines connect.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="N", min=0, max=65535, help="Port (0: any free one).")]
    = 8765,
    token: Annotated[str | None, typer.Option(
        metavar="TEXT", envvar="SCENETAG_TOKEN",
        help="Require this token (open the page as /?token=TEXT). Env: SCENETAG_TOKEN.")] = None,
    threads: Annotated[int, typer.Option(metavar="N", min=1,
                                         help="CPU threads for the model (a query is one short text: "
                                              "more threads mostly contend).")] = 1,
    model: StoreModelOpt = None,
    device: DeviceOpt = None,
    runtime: RuntimeOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Search and browse the store in a browser (needs the serve extra)."""

    def job() -> int:
        from pipeline.serve import require_web

        require_web()
        from pipeline.serve import server
        from pipeline.serve.app import create_app
        from pipeline.store.db import EmbeddingStore

        if reports is not None and not reports.is_dir():
            raise PipelineError(f"--reports: no folder {reports}")
        if token is not None and not token.strip():
            raise PipelineError("--token: give a non-empty token")
        db = EmbeddingStore.open(store)
        sock = server.bind(host, port)
        if not server.is_loopback(host):
            log.warning("listening on %s: other machines can reach this server%s", host,
                        "" if token else "; anyone who can connect sees every stored video (set --token)")
        server.limit_model_threads(threads)
        embedder = _store_embedder(db, model, device, runtime)
        web = create_app(db, embedder, reports=reports, token=token,
                         allowed_hosts=server.allowed_hosts(host), prompt_cache=model in (None, db.model_id))
        url = server.token_url(server.url_of(sock), token)
        count = plural(len(web.state.scenetag.library), "input")
        try:
            server.run_forever(web, sock, on_ready=None if quiet else lambda: typer.echo(
                f"scenetag: serving {count} at {url} (Ctrl-C stops)", err=True))
        except KeyboardInterrupt:  # uvicorn stopped gracefully, then re-raised the Ctrl-C
            if not quiet:
                typer.echo("scenetag: stopped", err=True)
        return EXIT_OK

    raise typer.Exit(guarded(job, quiet=quiet, debug=debug))


def _query_text(value: str | None) -> str | None:
    """QUERY, refused when empty or blank (it would match nothing in particular)
    or not text (bytes that are not UTF-8 reach Python as lone surrogates)."""
    if value is not None and not value.strip():
        raise typer.BadParameter("give words to search for (the query is empty or blank)")
    if value is not None and _has_surrogate(value):
        raise typer.BadParameter("not UTF-8 text (check the terminal's encoding)")
    return value


def _output_folder(out: Path) -> None:
    """Make ``out`` and mark it as scenetag's, so later runs never take its
    search sheets or cluster plots for inputs."""
    from pipeline.report.folders import mark_output_folder

    out.mkdir(parents=True, exist_ok=True)
    mark_output_folder(out)


def _has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def _store_embedder(db: Any, model: str | None, device: str | None, runtime: str | None = None) -> Any:
    """The store's model (or ``model``, which must have the same dimension),
    on the runtime the stored frames were embedded with unless ``runtime`` says."""
    from pipeline.embed import load_embedder
    from pipeline.embed.load import hub_revision

    revision = None if model else hub_revision(db.model_revision)
    embedder = load_embedder(model or db.model_id, revision=revision, device=device or "auto",
                             runtime=runtime or "auto",
                             stored=None if model else [v.precision for v in db.videos()])
    db.check_model(embedder.model_id, embedder.revision, embedder.dim, same_model=model is None)
    return embedder



def _store_texts(db: Any, device: str | None, runtime: str | None) -> Callable[[list[str]], Any]:
    """Texts -> vectors from the store's prompt cache; the store's model is
    loaded (once) only for texts the cache lacks, which it then keeps."""
    import numpy as np

    from pipeline.store.cache import embed_and_keep

    embedder: list[Any] = []

    def embed_texts(texts: list[str]) -> Any:
        found, _ = db.text_vectors(db.model_id, db.model_revision, texts)
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            embedder[:] = embedder or [_store_embedder(db, None, device, runtime)]
            found.update(embed_and_keep(db, embedder[0], missing))
        return np.stack([found[t] for t in texts])

    return embed_texts
