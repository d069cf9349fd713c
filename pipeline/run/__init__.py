"""The one place that knows the order of stages: expanding inputs, the job
(decode → embed → score → refine → report), refinement rounds, rescoring a
store, resuming and the run index."""
