"""LanceDB's Rust logger (env_logger, filter variable LANCEDB_LOG, read
when lancedb is imported) writes raw lines to stderr: off unless --debug."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import os, sys
from pipeline.cli.logs import setup_logging
setup_logging(quiet=False, debug=sys.argv[1] == "debug")
import numpy as np, pyarrow as pa, lancedb, tempfile
print(os.environ.get("LANCEDB_LOG"))
db = lancedb.connect(tempfile.mkdtemp())
v = np.random.default_rng(0).normal(size=(300, 8)).astype("float32")
t = db.create_table("t", pa.table({"vector": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), 8)}))
t.create_index(metric="cosine", vector_column_name="vector", num_partitions=64, num_sub_vectors=2)
"""


def probe(mode: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k != "LANCEDB_LOG"}
    return subprocess.run([sys.executable, "-W", "ignore", "-c", PROBE, mode], capture_output=True,
                          text=True, timeout=120, env={**clean, **env}, check=True)


def test_lance_rust_warnings_stay_off_stderr_unless_debug():
    quiet = probe("normal")
    assert quiet.stdout.split() == ["off"] and "lance" not in quiet.stderr
    shown = probe("debug", LANCEDB_LOG="warn")  # --debug leaves lance's own filter alone
    assert "WARN" in shown.stderr and "lance" in shown.stderr
