"""The ``radgazegen`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from radgazegen.presets import PRESETS, get_preset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="radgazegen", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    book = commands.add_parser("book", help="execute the notebooks for a preset, then build the HTML book")
    book.add_argument("--preset", default="cpu", choices=sorted(PRESETS))
    book.add_argument("--data", help="a REFLACX folder (main_data/...); default: the preset's phantom")
    book.add_argument("--images", help="MIMIC-CXR image root for a real REFLACX folder")
    book.add_argument("--run-dir", help="where artefacts and the manifest go (default runs/<preset>)")
    book.add_argument("--executed-dir", help="where executed notebooks go (default book/chapters)")
    book.add_argument("--root", default=".", help="the repository root (holds _toc.yml)")
    book.add_argument("--force", action="store_true", help="re-execute notebooks even when cached")
    book.add_argument("--only", nargs="+", metavar="NAME", help="execute only these chapters (e.g. 01_gaze_heatmaps)")
    book.add_argument("--no-build", action="store_true", help="execute notebooks only")

    data = commands.add_parser("data", help="data set tools")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    phantom = data_commands.add_parser("phantom", help="write the phantom data set in the REFLACX layout")
    phantom.add_argument("--out", required=True)
    phantom.add_argument("--n", type=int, default=100)
    phantom.add_argument("--seed", type=int, default=0)
    phantom.add_argument("--size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"), default=(576, 480))

    args = parser.parse_args(argv)
    if args.command == "book":
        return _book(args)
    return _phantom(args)


def _book(args: argparse.Namespace) -> int:
    from radgazegen.book import NotebookFailed, build_html, execute_notebooks

    started = time.perf_counter()
    try:
        status = execute_notebooks(
            args.root, get_preset(args.preset), data_dir=args.data, images_dir=args.images,
            run_dir=args.run_dir, executed_dir=args.executed_dir, force=args.force, only=args.only,
        )  # fmt: skip
    except NotebookFailed as err:
        print(f"radgazegen book: {err}", file=sys.stderr)
        return 1
    for name, state in status.items():
        print(f"  {name}: {state}")
    if not args.no_build:
        html = build_html(args.root)
        print(f"book: {html / 'index.html'}")
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


def _phantom(args: argparse.Namespace) -> int:
    from radgazegen.data.phantom import generate_phantom

    out = generate_phantom(Path(args.out), n=args.n, seed=args.seed, size=tuple(args.size))
    print(f"phantom data set: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
