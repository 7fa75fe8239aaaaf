"""The mutation gate: plant plausible bugs one at a time and check that the tests catch each one.

    python scripts/mutants.py            # every mutant in tests/mutants/*.py (make mutants)
    python scripts/mutants.py --fast     # only the mutants marked fast=True (part of make test)
    python scripts/mutants.py --list     # list them

Each module in ``tests/mutants/`` defines ``MUTANTS``, a list of dicts:
``name`` (what the bug is), ``file`` (relative to the repository root), ``old`` (a snippet that must
occur exactly once in the file), ``new`` (its replacement, the bug), ``tests`` (pytest paths or node
ids that must fail), and optionally ``fast`` (run in ``--fast``). For each mutant the file is
rewritten, the tests run (``pytest -x -q``, with a time limit), and the file is restored whatever
happens (also on Ctrl-C or SIGTERM). A mutant whose tests pass *survived*; a mutant whose ``old``
snippet no longer occurs exactly once is *stale* (the code moved on: update the entry). The exit
status is non-zero if any mutant survived or is stale, and the table names them.
"""
from __future__ import annotations

import argparse
import importlib.util
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_mutants() -> list[dict]:
    mutants = []
    for path in sorted((ROOT / "tests" / "mutants").glob("*.py")):
        if path.name.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location(f"mutants_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for m in module.MUTANTS:
            mutants.append({**m, "family": path.stem})
    return mutants


class Restore:
    """Holds the original text of the file being mutated and writes it back on exit or signal."""

    def __init__(self):
        self.path, self.text = None, None
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)

    def set(self, path: Path, text: str):
        self.path, self.text = path, text

    def restore(self):
        if self.path is not None:
            self.path.write_text(self.text)
            self.path, self.text = None, None

    def _on_signal(self, signum, frame):
        self.restore()
        sys.exit(128 + signum)


def run_one(m: dict, guard: Restore, timeout: float) -> tuple[str, float]:
    path = ROOT / m["file"]
    text = path.read_text()
    if text.count(m["old"]) != 1:
        return "STALE", 0.0
    start = time.perf_counter()
    guard.set(path, text)
    try:
        path.write_text(text.replace(m["old"], m["new"]))
        try:
            proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", *m["tests"]],
                                  cwd=ROOT, capture_output=True, text=True, timeout=timeout)
            status = "caught" if proc.returncode != 0 else "SURVIVED"
        except subprocess.TimeoutExpired:
            status = "caught (timeout)"
    finally:
        guard.restore()
    assert path.read_text() == text, f"could not restore {m['file']}"
    return status, time.perf_counter() - start


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fast", action="store_true", help="only mutants marked fast=True")
    p.add_argument("--family", nargs="*", help="only these families (file stems in tests/mutants)")
    p.add_argument("--list", action="store_true")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant")
    args = p.parse_args(argv)
    mutants = load_mutants()
    if args.fast:
        mutants = [m for m in mutants if m.get("fast")]
    if args.family:
        mutants = [m for m in mutants if m["family"] in args.family]
    if args.list:
        for m in mutants:
            print(f"{m['family']:10s} {m['name']}")
        return 0
    guard = Restore()
    bad = []
    print(f"{'status':18s} {'seconds':>7s}  mutant")
    for m in mutants:
        status, seconds = run_one(m, guard, args.timeout)
        print(f"{status:18s} {seconds:7.1f}  {m['name']}", flush=True)
        if status in ("SURVIVED", "STALE"):
            bad.append((status, m["name"]))
    print(f"{len(mutants) - len(bad)} caught, {len(bad)} survived or stale")
    for status, name in bad:
        print(f"  {status}: {name}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
