"""Pure analysis: per-frame scores, smoothing into segments, cut evidence,
edge planning and bisection. numpy only; no files, no models
(callers hand in what was decoded and embedded)."""
