"""The ``radgazegen`` command line."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from radgazegen.presets import PRESETS, get_preset


def _with_data_options(parser: argparse.ArgumentParser, device: bool = True) -> argparse.ArgumentParser:
    """The options every command on a data set takes: preset, data, images, run directory (and device)."""
    parser.add_argument("--preset", default="cpu", choices=sorted(PRESETS))
    parser.add_argument("--data", help="a REFLACX folder (main_data/...); default: the preset's phantom")
    parser.add_argument("--images", help="MIMIC-CXR image root for a real REFLACX folder")
    parser.add_argument("--run-dir", help="where artefacts and the manifest go (default runs/<preset>)")
    if device:
        parser.add_argument("--device", default=None, help="torch device (default: the preset's)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="radgazegen", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    book = _with_data_options(
        commands.add_parser("book", help="execute the notebooks for a preset, then build the HTML book"), device=False
    )
    book.add_argument(
        "--executed-dir",
        help="where executed notebooks go (default book/chapters, the published book; "
        "another folder builds from a staged copy in <run-dir>/book)",
    )
    book.add_argument("--root", default=".", help="the repository root (holds _toc.yml)")
    book.add_argument("--force", action="store_true", help="re-execute notebooks even when cached")
    book.add_argument("--only", nargs="+", metavar="NAME", help="execute only these chapters (e.g. 01_gaze_heatmaps)")
    book.add_argument("--no-build", action="store_true", help="execute notebooks only")

    controls = _with_data_options(
        commands.add_parser("controls", help="extract control maps for every case into the run directory")
    )
    controls.add_argument(
        "--controls",
        nargs="+",
        metavar="NAME",
        help="control names (default: all base controls"
        " and the default texture maps), e.g. canny sobel log lungs gaze texture:glcm_Contrast",
    )
    controls.add_argument(
        "--lung-masks", help="folder of <dicom_id>.png lung masks (else phantom truth or segmentation)"
    )

    train = _with_data_options(
        commands.add_parser("train", help="train the base UNet or the ControlNets (runs under accelerate launch)")
    )
    train.add_argument("--stage", required=True, choices=("base", "controlnet"))
    train.add_argument(
        "--mode",
        default="multi",
        choices=("multi", "fused"),
        help="multi: one ControlNet per control (the paper); fused: one over all controls",
    )
    train.add_argument("--controls", nargs="+", metavar="NAME", help="default: the preset's generator controls")
    train.add_argument("--pretrained", help="a local Stable Diffusion folder (diffusers layout) to fine-tune")
    train.add_argument("--steps", type=int, help="optimizer steps (default: the preset's)")
    train.add_argument("--no-resume", action="store_true", help="start afresh instead of resuming from latest")
    train.add_argument("--report-to", nargs="+", default=[], metavar="TRACKER",
                       help="accelerate trackers that also get the loss, e.g. tensorboard wandb")

    sample = _with_data_options(
        commands.add_parser("sample", help="generate images with a trained pipeline for cases of a data set")
    )
    sample.add_argument("--pipeline", help="a saved RadGazeGenPipeline folder (default: the run's checkpoints)")
    sample.add_argument("--split", default="test", help="the cases to sample (their reports and controls)")
    sample.add_argument("--mode", choices=("multi", "fused", "text"), default="multi")
    sample.add_argument("--scale", type=float, default=1.0, help="conditioning scale of every control")
    sample.add_argument("--out", help="output folder (default <run-dir>/samples/<mode>, or <run-dir>/samples/release)")
    sample.add_argument("--release", help="the authors' released weights (a local folder in their layout) "
                        "instead of a pipeline: sampled as their scripts do")
    sample.add_argument("--release-scales", default="reflacx", choices=("reflacx", "chexpert"),
                        help="their released conditioning scales: REFLACX, or CheXpert / long tail")

    export = commands.add_parser(
        "export", help="save a run's networks (or convert a saved pipeline) as a diffusers pipeline folder"
    )
    export.add_argument("--preset", default="cpu", choices=sorted(PRESETS))
    export.add_argument("--run-dir", help="the trained run (default runs/<preset>)")
    export.add_argument("--pipeline", help="instead of a run: a saved pipeline folder (either format) to convert")
    export.add_argument("--out", required=True, help="the folder to write (DiffusionPipeline.from_pretrained loads it)")

    samples = _with_data_options(
        commands.add_parser("export-samples", help="write a configuration's bank samples in CheXGenBench's layout "
                            "(8-bit PNGs and prompt_INFO.csv)")  # fmt: skip
    )
    samples.add_argument("--configuration", required=True,
                         help="a sample-bank configuration (text, rad, gaze, both, both+texture, fused, donor, perturbed)")
    samples.add_argument("--pipeline", help="a saved pipeline folder (default: the preset's, else the run's networks)")
    samples.add_argument("--out", required=True, help="the folder to write (CheXGenBench's --synthetic_img_dir)")
    samples.add_argument("--overwrite", action="store_true", help="replace --out if it exists")

    ship = _with_data_options(
        commands.add_parser("ship", help="export a trained run as a shipped checkpoint: curves, manifest, SHA-256")
    )
    ship.add_argument("--out", required=True, help="the checkpoint folder to write (e.g. radgazegen/weights/phantom-64)")
    ship.add_argument("--recipe", required=True, help="the shell script whose commands trained the run")
    ship.add_argument("--curve-readings", type=int, default=32, help="readings per point of the adherence curves")

    data = commands.add_parser("data", help="data set tools")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    phantom = data_commands.add_parser("phantom", help="write the phantom data set in the REFLACX layout")
    phantom.add_argument("--out", required=True)
    phantom.add_argument("--n", type=int, default=100)
    phantom.add_argument("--seed", type=int, default=0)
    phantom.add_argument("--size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"), default=(576, 480))

    args = parser.parse_args(argv)
    command = {"book": _book, "controls": _controls, "train": _train, "sample": _sample, "export": _export,
               "export-samples": _export_samples, "ship": _ship, "data": _phantom}[args.command]  # fmt: skip
    try:
        return command(args)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError, ImportError) as err:  # DataFormatError, ...
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"radgazegen {args.command}: {message}", file=sys.stderr)
        return 1


def _book(args: argparse.Namespace) -> int:
    try:
        from radgazegen.book import NotebookFailed, build_book, execute_notebooks
    except ImportError as err:
        print(f"radgazegen book: the book tools are not installed ({err}); pip install 'radgazegen[book]'",
              file=sys.stderr)  # fmt: skip
        return 1

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
        try:
            html = build_book(args.root, get_preset(args.preset), run_dir=args.run_dir, executed_dir=args.executed_dir)
        except subprocess.CalledProcessError:
            print("radgazegen book: jupyter-book build failed (its warnings and errors are printed above)",
                  file=sys.stderr)  # fmt: skip
            return 1
        print(f"book: {html / 'index.html'}")
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


def _on_dataset(args: argparse.Namespace, action) -> int:
    """Run ``action(preset, run_dir, dataset, device)`` on the data set the options name, once what interrupted
    writes left in the run directory is deleted (:func:`~radgazegen.io.remove_leftovers`)."""
    from radgazegen.io import remove_leftovers
    from radgazegen.runs import prepare_dataset, resolve_device, run_dir_for

    preset = get_preset(args.preset)
    run_dir = run_dir_for(preset, args.run_dir)
    if run_dir.is_dir() and int(os.environ.get("RANK", "0")) == 0:  # the first process, before anything is written
        remove_leftovers(run_dir)
    dataset = prepare_dataset(preset, args.data, run_dir, args.images)
    return action(preset, run_dir, dataset, resolve_device(args.device or preset.device))


def _controls(args: argparse.Namespace) -> int:
    from radgazegen.controls.extract import extract_controls
    from radgazegen.controls.registry import DEFAULT_CONTROLS, ControlSettings
    from radgazegen.runs import record

    names = args.controls or list(DEFAULT_CONTROLS)

    def extract(preset, run_dir, dataset, device) -> int:
        started = time.perf_counter()
        registry = extract_controls(dataset, names, run_dir, ControlSettings(size=preset.control_size),
                                    lung_dir=args.lung_masks, device=device)  # fmt: skip
        seconds = round(time.perf_counter() - started, 2)
        record(run_dir, "controls", "extraction", registry.to_dict() | {"controls": names, "cases": len(dataset),
                                                                        "seconds": seconds})  # fmt: skip
        print(f"controls of {len(dataset)} cases in {run_dir / 'controls'} ({seconds} s)")
        return 0

    return _on_dataset(args, extract)


def _train(args: argparse.Namespace) -> int:
    from radgazegen.models.train import train

    def run(preset, run_dir, dataset, device) -> int:
        results = train(preset, run_dir, args.stage, dataset, mode=args.mode, controls=args.controls,
                        pretrained=args.pretrained, steps=args.steps, resume=not args.no_resume, device=device,
                        report_to=args.report_to)  # fmt: skip
        for result in results if int(os.environ.get("RANK", "0")) == 0 else ():  # once under accelerate launch
            print(f"{result.folder}: steps {result.start_step}->{result.steps} in {result.seconds:.1f} s, "
                  f"last loss {result.last_loss:.4f}")  # fmt: skip
        return 0

    return _on_dataset(args, run)


def _sample(args: argparse.Namespace) -> int:
    from radgazegen.models.sampling import sample_cases, sample_release

    def run(preset, run_dir, dataset, device) -> int:
        if args.release:
            out = sample_release(dataset, args.release, args.out or Path(run_dir) / "samples" / "release",
                                 split=args.split, scales=args.release_scales, device=device)  # fmt: skip
        else:
            out = sample_cases(preset, run_dir, dataset, split=args.split, mode=args.mode, scale=args.scale,
                               pipeline=args.pipeline, out=args.out, device=device)  # fmt: skip
        print(f"samples: {out}")
        return 0

    return _on_dataset(args, run)


def _export(args: argparse.Namespace) -> int:
    from radgazegen.models.shipped import convert
    from radgazegen.models.assembly import export_run
    from radgazegen.runs import run_dir_for

    if args.pipeline:
        out = convert(args.pipeline, args.out)
    else:
        preset = get_preset(args.preset)
        out = export_run(run_dir_for(preset, args.run_dir), preset, args.out)
    print(f"pipeline: {out}")
    return 0


def _export_samples(args: argparse.Namespace) -> int:
    from radgazegen.evaluation.chexgenbench import PROMPTS_FILE, export_samples
    from radgazegen.evaluation.study import Study

    def run(preset, run_dir, dataset, device) -> int:
        study = Study(preset, run_dir, dataset, pipeline_dir=args.pipeline, device=device)
        configuration = study.configuration(args.configuration)
        samples = study.samples(configuration.name)
        prompts = {case.id: case.transcription() for case in study.conditions}
        out = export_samples(samples, prompts, args.out, overwrite=args.overwrite)
        label = "uses the prompt's patient's own Rad-CN maps: not comparable with text-to-image models" \
            if configuration.uses_own_image else "no control from the prompt's patient's own image"  # fmt: skip
        print(f"{len(samples.ids)} samples of {configuration.name!r} ({label}): {out / PROMPTS_FILE}")
        return 0

    return _on_dataset(args, run)


def _ship(args: argparse.Namespace) -> int:
    from radgazegen.data.phantom import phantom_manifest
    from radgazegen.evaluation.curves import training_curves
    from radgazegen.evaluation.study import Study
    from radgazegen.models.shipped import export

    recipe = Path(args.recipe)
    if not recipe.is_file():
        raise FileNotFoundError(f"{recipe}: no such file (the script that trained the run)")
    commands = [line for line in recipe.read_text().splitlines() if line.strip() and not line.startswith("#")]

    def run(preset, run_dir, dataset, device) -> int:
        study = Study(preset, run_dir, dataset, device=device)
        curves = training_curves(study, readings=args.curve_readings)
        prompts = [case.transcription() for case in list(dataset)[:8]]
        out = export(run_dir, preset, args.out, commands=commands, curves=curves, prompts=prompts,
                     dataset=phantom_manifest(dataset.root))  # fmt: skip
        print(f"shipped checkpoint: {out}")
        return 0

    return _on_dataset(args, run)


def _phantom(args: argparse.Namespace) -> int:
    from radgazegen.data.phantom import generate_phantom

    out = generate_phantom(Path(args.out), n=args.n, seed=args.seed, size=tuple(args.size))
    print(f"phantom data set: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
