"""Install time of the package alone (what a chapter's Colab cell installs) and with the ``[book]`` extra.

Each variant gets a fresh venv with ``torch==2.13.0`` installed first and not timed (Colab ships torch), then
``pip install <package>`` (non-editable, from a copy of the sources, as ``pip install git+...`` builds it) is
timed, and the venv's size is measured. pip's cache is whatever this machine has: a warm cache measures
unpacking and building, not downloading; ``--no-cache`` measures downloads too.

    python benchmarks/install_time.py [--no-cache] [--json radgazegen/benchmark_results/install_time_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20


def measure(extra: str, *, no_cache: bool) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        source = scratch / "source"
        shutil.copytree(ROOT / "radgazegen", source / "radgazegen", ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(ROOT / name, source / name)
        venv = scratch / "venv"
        subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *(["--no-cache-dir"] if no_cache else [])]
        subprocess.run([*pip, "torch==2.13.0"], check=True)
        before = _size_mb(venv)
        started = time.perf_counter()
        subprocess.run([*pip, f"{source}{extra}"], check=True)
        seconds = time.perf_counter() - started
        return {"install": f"radgazegen{extra}", "seconds": round(seconds, 1),
                "added_mb": round(_size_mb(venv) - before, 1), "venv_mb": round(_size_mb(venv), 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-cache", action="store_true", help="bypass pip's cache (download every wheel)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    rows = [measure(extra, no_cache=args.no_cache) for extra in ("", "[book]")]
    print(f"{'install':<20} {'seconds':>8} {'added MB':>9} {'venv MB':>8}")
    for row in rows:
        print(f"{row['install']:<20} {row['seconds']:>8.1f} {row['added_mb']:>9.1f} {row['venv_mb']:>8.1f}")
    alone, book = rows
    print(f"the [book] extra adds {book['seconds'] - alone['seconds']:.1f} s and "
          f"{book['added_mb'] - alone['added_mb']:.0f} MB to the package alone")
    if args.json:
        args.json.write_text(json.dumps({"date": datetime.now(UTC).date().isoformat(), "pip_cache": not args.no_cache,
                                         "torch": "2.13.0 (installed first, not timed)", "rows": rows}, indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
