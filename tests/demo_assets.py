"""Where the bundled demo lives, for the tests that run it end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
MODEL = ROOT / "models" / "scenetag-demo-clip"
CONFIG = ROOT / "configs" / "demo.yaml"
TRUTH = ROOT / "sample_videos" / "demo_truth.json"

# A checkout without the trained demo model or its clips skips these tests.
needs_demo = pytest.mark.skipif(not (MODEL / "model.safetensors").exists() or not TRUTH.exists(),
                                reason="demo model or demo clips not built")
