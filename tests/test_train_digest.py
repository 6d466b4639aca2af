"""Fixed-seed one-thread training runs give the same model bits as the stored digests
(tests/golden/train_digests.json): refactorings of the trainer, the preprocessing or the
kernel's Python side must not change a single bit.  The runs use the kernel's baseline
instruction-set variant so that the digests do not depend on the CPU's vector units."""
import json
import os
import subprocess
import sys
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden"


def test_fixed_seed_runs_match_the_stored_digests(tmp_path):
    env = dict(os.environ, H2ODL_ISA="baseline")
    out = subprocess.run([sys.executable, str(GOLDEN / "train_digest_runs.py"), str(tmp_path / "d.csv")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout)
    want = json.loads((GOLDEN / "train_digests.json").read_text())
    assert got == want
