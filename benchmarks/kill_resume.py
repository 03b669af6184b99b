"""SIGKILL the command line at random moments, then run it again: count kills, and lost or corrupt state.

Scenarios (each ``--trials`` times, on the ``smoke`` preset in a temporary folder):

* ``phantom``: ``radgazegen data phantom`` into an empty folder;
* ``phantom-replace``: the same over an existing data set of another seed;
* ``controls``: ``radgazegen controls`` on a run whose data set exists;
* ``train``: ``radgazegen train --stage base`` (checkpoints every 2 steps), resumed by running it again.

Each command first runs uninterrupted (the reference, and its wall time ``T``); a trial starts it again, kills
it after a uniform random delay in ``(0, T)``, inspects what is on disk, then runs it to completion. State is

* **corrupt** when, after the kill, something readable is wrong: a data set that is neither the old one nor the
  new one whole, a control map that differs from the reference, a checkpoint folder that does not verify;
* **lost** when the run to completion fails or differs from the reference (every data set file, every control
  map, the final weights and the step log), or leaves temporary files behind.

Prints one row per scenario and writes ``radgazegen/benchmark_results/kill_resume_<machine>.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from radgazegen.io import LEFTOVER, file_digests
from radgazegen.models.checkpoint import checkpoints, verify_checkpoint

CLI = [sys.executable, "-m", "radgazegen.cli"]
PHANTOM = ["--n", "30", "--size", "288", "240"]
TRAIN_STEPS = 24


def run(arguments: list[str], kill_after: float | None = None) -> tuple[bool, float]:
    """Run the CLI; with ``kill_after``, SIGKILL it then. Returns (killed before it ended, seconds)."""
    started = time.perf_counter()
    process = subprocess.Popen([*CLI, *arguments], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        process.wait(timeout=kill_after)
        if process.returncode != 0:
            raise RuntimeError(f"{arguments} failed: {process.stderr.read().decode()[-2000:]}")
        return False, time.perf_counter() - started
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
        return True, time.perf_counter() - started
    finally:
        process.stderr.close()


def leftovers(folder: Path) -> list[str]:
    return [str(path) for path in folder.rglob("*") if LEFTOVER.fullmatch(path.name)]


def npy_maps(run_dir: Path) -> dict[str, np.ndarray]:
    """Every control map a reader can find (``<case>.npy``; not the hidden temporary file of one being written)."""
    found = sorted(p for p in (run_dir / "controls").rglob("*.npy") if not LEFTOVER.fullmatch(p.name))
    return {str(p.relative_to(run_dir)): np.load(p) for p in found}


class Scenario:
    """One command killed and re-run ``trials`` times; subclasses say how to set up and what to check."""

    name = ""

    def __init__(self, root: Path) -> None:
        self.root = root

    def arguments(self, place: Path) -> list[str]:
        raise NotImplementedError

    def prepare(self, place: Path) -> None:
        place.mkdir(parents=True)

    def corrupt_after_kill(self, place: Path) -> list[str]:
        raise NotImplementedError

    def began(self, place: Path) -> bool:
        """Whether the killed command had started writing (anything new under ``place``)."""
        return any(path.stat().st_mtime > self.started for path in place.rglob("*"))

    def lost_after_rerun(self, place: Path) -> list[str]:
        raise NotImplementedError

    def reference(self) -> float:
        self.reference_place = self.root / f"{self.name}-reference"
        self.prepare(self.reference_place)
        return run(self.arguments(self.reference_place))[1]

    def trial(self, k: int, wall: float, rng: random.Random) -> dict:
        place = self.root / f"{self.name}-{k}"
        self.prepare(place)
        delay = rng.uniform(0.0, wall)
        self.started = time.time()
        killed, _ = run(self.arguments(place), kill_after=delay)
        writing = killed and self.began(place)
        corrupt = self.corrupt_after_kill(place)
        run(self.arguments(place))
        lost = self.lost_after_rerun(place) + leftovers(place)
        shutil.rmtree(place)
        return {"delay": round(delay, 2), "killed": killed, "while_writing": writing, "corrupt": corrupt, "lost": lost}


class Phantom(Scenario):
    name = "phantom"
    seed = 1

    def arguments(self, place: Path) -> list[str]:
        return ["data", "phantom", "--out", str(place / "data"), "--seed", str(self.seed), *PHANTOM]

    def reference(self) -> float:
        wall = super().reference()
        self.new = file_digests(self.reference_place / "data")
        return wall

    def corrupt_after_kill(self, place: Path) -> list[str]:
        data = place / "data"
        return [] if not data.exists() or file_digests(data) == self.new else [f"{data}: a partial data set"]

    def lost_after_rerun(self, place: Path) -> list[str]:
        return [] if file_digests(place / "data") == self.new else [f"{place / 'data'}: differs from the reference"]


class PhantomReplace(Phantom):
    name = "phantom-replace"

    def prepare(self, place: Path) -> None:
        super().prepare(place)
        shutil.copytree(self.root / "old", place / "data")

    def reference(self) -> float:
        run(["data", "phantom", "--out", str(self.root / "old"), "--seed", "7", *PHANTOM])
        self.old = file_digests(self.root / "old")
        return super().reference()

    def corrupt_after_kill(self, place: Path) -> list[str]:
        data = place / "data"
        whole = not data.exists() or file_digests(data) in (self.new, self.old)
        return [] if whole else [f"{data}: neither the old nor the new data set"]


class Controls(Scenario):
    name = "controls"

    def arguments(self, place: Path) -> list[str]:
        return ["controls", "--preset", "smoke", "--run-dir", str(place)]

    def prepare(self, place: Path) -> None:
        shutil.copytree(self.root / "base-run", place)

    def reference(self) -> float:
        wall = super().reference()
        self.maps = npy_maps(self.reference_place)
        return wall

    def corrupt_after_kill(self, place: Path) -> list[str]:
        found = npy_maps(place)
        return [key for key, values in found.items() if not np.array_equal(values, self.maps[key])]

    def lost_after_rerun(self, place: Path) -> list[str]:
        found = npy_maps(place)
        if found.keys() != self.maps.keys():
            return [f"{place}: {len(found)} control maps, the reference has {len(self.maps)}"]
        return [key for key, values in found.items() if not np.array_equal(values, self.maps[key])]


class Train(Scenario):
    name = "train"

    def arguments(self, place: Path) -> list[str]:
        return ["train", "--preset", "smoke", "--run-dir", str(place), "--stage", "base", "--steps", str(TRAIN_STEPS)]

    def prepare(self, place: Path) -> None:
        shutil.copytree(self.root / "base-run", place)

    def reference(self) -> float:
        wall = super().reference()
        self.weights = self._weights(self.reference_place)
        return wall

    @staticmethod
    def _weights(place: Path) -> dict:
        from safetensors.torch import load_file

        return load_file(place / "checkpoints" / "base" / "final" / "unet" / "diffusion_pytorch_model.safetensors")

    def corrupt_after_kill(self, place: Path) -> list[str]:
        bad = []
        for path in checkpoints(place / "checkpoints" / "base"):
            try:
                verify_checkpoint(path)
            except (ValueError, OSError) as err:  # DataFormatError, ChecksumError
                bad.append(str(err))
        return bad

    def lost_after_rerun(self, place: Path) -> list[str]:
        from radgazegen.models.train import read_log

        lost = []
        steps = [entry["step"] for entry in read_log(place / "checkpoints" / "base")]
        if steps != list(range(1, TRAIN_STEPS + 1)):
            lost.append(f"log steps {steps}")
        weights = self._weights(place)
        worst = max(float((weights[k].double() - v.double()).abs().max()) for k, v in self.weights.items())
        if worst > 0:
            lost.append(f"final weights differ from the uninterrupted run's by up to {worst:.3g}")
        return lost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=6, help="kills per scenario")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="radgazegen/benchmark_results/kill_resume_cpu.json")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="kill-resume-"))
    try:
        # a smoke run folder holding its data set only (any command on it generates the phantom)
        run(["controls", "--preset", "smoke", "--run-dir", str(root / "base-run"), "--controls", "canny"])
        shutil.rmtree(root / "base-run" / "controls")
        rows = []
        for scenario in (Phantom(root), PhantomReplace(root), Controls(root), Train(root)):
            wall = scenario.reference()
            trials = [scenario.trial(k, wall, rng) for k in range(args.trials)]
            row = {"scenario": scenario.name, "uninterrupted_s": round(wall, 2), "runs": 2 * len(trials) + 1,
                   "kills": sum(t["killed"] for t in trials), "while_writing": sum(t["while_writing"] for t in trials),
                   "corrupt": sum(bool(t["corrupt"]) for t in trials),
                   "lost": sum(bool(t["lost"]) for t in trials), "trials": trials}  # fmt: skip
            rows.append(row)
            print(f"{row['scenario']:16s} {row['uninterrupted_s']:7.1f} s uninterrupted  runs {row['runs']:3d}  "
                  f"kills {row['kills']:3d} ({row['while_writing']:3d} while writing)  corrupt {row['corrupt']}  "
                  f"lost {row['lost']}", flush=True)  # fmt: skip
        total = {key: sum(row[key] for row in rows) for key in ("runs", "kills", "while_writing", "corrupt", "lost")}
        print(f"{'total':16s} {'':25s} runs {total['runs']:3d}  kills {total['kills']:3d} "
              f"({total['while_writing']:3d} while writing)  corrupt {total['corrupt']}  lost {total['lost']}")  # fmt: skip
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"total": total, "scenarios": rows}, indent=1) + "\n")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
