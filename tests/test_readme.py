"""Every command and code block of README.md runs as written, top to bottom, from the
repository root on the bundled data: bash blocks as bash scripts (`set -euo pipefail`, with
stand-in `sbatch` and `qsub` first on PATH that check the job script they are given and
record it), python blocks as scripts, toml blocks written to the file their first comment
names.  A block's `source` line (the environment the README activates) holds for the blocks
after it, as in the reader's shell.  `make test` is this suite itself and is the one line not
run from here."""
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
KINDS = ("bash", "python", "toml")
SELF = "make test"
STANDIN = r'''#!/bin/bash
# stand-in {name}: the script must exist, parse, and carry {directive} directives
script="${{@: -1}}"
[ -f "$script" ] || {{ echo "{name}: no such script $script" >&2; exit 1; }}
bash -n "$script" || exit 1
grep -q "^{directive} " "$script" || {{ echo "{name}: $script has no {directive} lines" >&2; exit 1; }}
echo "{name} $*" >> "{log}"
echo "Submitted batch job 1"
'''


def readme_blocks(text=None):
    """[(language, code)] of the README's fenced blocks, in order."""
    text = (ROOT / "README.md").read_text() if text is None else text
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(text)]


def runnable(code):
    """A bash block with the one line that is this test suite replaced by a no-op."""
    return "\n".join(": this test suite" if line.strip().startswith(SELF) else line for line in code.splitlines())


def _standins(tmp_path):
    bindir, log = tmp_path / "bin", tmp_path / "submitted.log"
    bindir.mkdir()
    for name, directive in (("sbatch", "#SBATCH"), ("qsub", "#PBS")):
        p = bindir / name
        p.write_text(STANDIN.format(name=name, directive=directive, log=log))
        p.chmod(p.stat().st_mode | stat.S_IEXEC)
    return bindir, log


def _run(kind, code, tmp_path, env, k, prelude=""):
    if kind == "toml":
        first = code.splitlines()[0]
        assert first.startswith("# "), f"toml block {k}: its first line must name its file (# path)"
        target = ROOT / first[2:].strip()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(code)
        return
    if kind == "bash":
        script = tmp_path / f"block_{k}.sh"
        script.write_text("set -euo pipefail\n" + prelude + runnable(code) + "\n")
        argv = ["bash", str(script)]
    else:
        script = tmp_path / f"block_{k}.py"
        script.write_text(code)
        argv = [sys.executable, str(script)]
    r = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"README block {k} ({kind}) failed with {r.returncode}:\n{code}\n{r.stderr[-3000:]}"


def test_every_block_is_bash_python_or_toml():
    kinds = [kind for kind, _ in readme_blocks()]
    assert kinds and all(k in KINDS for k in kinds), kinds


OUTPUTS = ("runs/mnist_model.h5", "runs/mnist.h5", "runs/mnist_report.html", "runs/housing.h5", "runs/mnist_py.h5",
           "runs/from_config.h5")


def test_the_readme_runs_top_to_bottom(tmp_path):
    for out in OUTPUTS:  # what the blocks write is theirs, not an earlier run's
        (ROOT / out).unlink(missing_ok=True)
    bindir, log = _standins(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env["PATH"] = f"{bindir}:{env['PATH']}"
    prelude = ""
    for k, (kind, code) in enumerate(readme_blocks()):
        _run(kind, code, tmp_path, env, k, prelude)
        if kind == "bash":
            prelude += "".join(line + "\n" for line in code.splitlines() if line.startswith("source "))
    submitted = log.read_text().splitlines()
    assert [s.split()[0] for s in submitted] == ["sbatch", "qsub"]  # both quick starts reached the scheduler
    for out in OUTPUTS:
        assert (ROOT / out).stat().st_size > 0, out


# ------------------------------------------------------------------- the checks can fail
def test_a_failing_command_or_a_bare_block_is_caught(tmp_path):
    assert readme_blocks("```\nls\n```\n") == [("", "ls\n")]  # no language: the first test refuses it
    bindir, _ = _standins(tmp_path)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}")
    with pytest.raises(AssertionError, match="failed with 3"):
        _run("bash", "true\nexit 3\n", tmp_path, env, 0)
    with pytest.raises(AssertionError, match="failed with 1"):
        _run("bash", "sbatch no_such_script.sbatch\n", tmp_path, env, 1)
    assert runnable("make run\nmake test   # the suite\n") == "make run\n: this test suite"
