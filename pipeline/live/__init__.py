"""Live and streamed input: URLs (HTTP, RTSP, RTMP, SRT, UDP, TCP, HLS), a
pipe on stdin and v4l2 cameras, tagged while they play.

* :mod:`~pipeline.live.sources` - which inputs are live, how they are opened,
  named and shown (credentials never leave it).
* :mod:`~pipeline.live.frames` - a reader thread per stream: decode, sample
  by PTS, reconnect; a queue that drops to the newest frames when the model
  falls behind real time.
* :mod:`~pipeline.live.tracker` - segments opened and closed as samples
  arrive, by the rules of :mod:`pipeline.analysis.smooth`.
* :mod:`~pipeline.live.events` - where segment events go (JSON lines, a URL).
* :mod:`~pipeline.live.outputs` - a stream's report folder, kept current,
  and the file run's reports at its end.
* :mod:`~pipeline.live.peaks` - the pictures of segment peaks, kept for
  the thumbnails (a stream cannot be read again).
* :mod:`~pipeline.live.stored` - a stream in the store (one input, gaps
  noted: :mod:`pipeline.decode.gaps`) and its analysis for ``rescore``.
* :mod:`~pipeline.live.session` - several streams, one model.

Live sits below the file pipeline (:mod:`pipeline.run`) and never imports
it: the model, store and classifier come from :mod:`pipeline.prepare`, the
folder names from :mod:`pipeline.report.folders`, as for files.
:func:`pipeline.run.job.run_job` hands live inputs to
:func:`pipeline.live.session.run_live`, and
:func:`pipeline.run.rescore.rescore_job` a stored stream to
:func:`pipeline.live.stored.analyse_stream`.
"""
