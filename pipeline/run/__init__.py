"""The file pipeline, in the order a run meets it:

* :mod:`~pipeline.run.inputs` - arguments expanded into media paths, and
  each input's report folder name.
* :mod:`~pipeline.run.job` - the job: decode → embed → score → refine →
  reports, one input at a time (live inputs go to :mod:`pipeline.live`).
* :mod:`~pipeline.run.refine` - edge refinement rounds through an engine
  (the pure planner is :mod:`pipeline.analysis.edges`).
* :mod:`~pipeline.run.rescore` - a store's embeddings scored again, nothing
  decoded that it holds.
* :mod:`~pipeline.run.index` - what a run reads back of its output folder
  (``--resume``, the run index) and the run-level files it writes.

The model, store and classifier a job starts from come from
:mod:`pipeline.prepare`.
"""
