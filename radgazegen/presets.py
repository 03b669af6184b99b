"""Named parameter sets: one source of truth for notebooks (papermill ``preset``), CLI and tests."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ModelSettings:
    """The generator built from config when no ``--pretrained`` Stable Diffusion folder is given.

    Pixel space (one grey channel, no VAE) at the control size; cross-attention reads the text
    encoder's token states directly (``cross_attention_dim`` = its width).
    """

    block_out_channels: tuple[int, ...]
    attention_levels: tuple[bool, ...]  # which UNet levels have cross-attention (high to low resolution)
    layers_per_block: int = 1
    attention_head_dim: int = 8
    norm_num_groups: int = 8
    max_prompt_tokens: int = 64


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Both training stages: the base UNet (stage ``base``) and the ControlNets (stage ``controlnet``)."""

    base_steps: int
    controlnet_steps: int  # per ControlNet in ``multi`` mode; for the one ControlNet in ``fused`` mode
    batch_size: int
    base_learning_rate: float
    controlnet_learning_rate: float
    checkpoint_every: int
    validate_every: int
    checkpoints_total_limit: int = 2
    gradient_accumulation: int = 1
    mixed_precision: str = "no"  # "no" | "fp16" | "bf16" (GPU)
    gradient_checkpointing: bool = False
    adam_8bit: bool = False  # bitsandbytes' 8-bit AdamW when installed (GPU)
    ema_decay: float | None = None  # None: no EMA weights
    prompt_dropout: float = 0.1  # share of empty prompts, for classifier-free guidance
    location_dropout: float = 0.5  # share of prompts without their location words (radgazegen.data.reports)
    warmup_steps: int = 20
    snapshots: bool = False  # keep the weights of every validation step (training curves)


@dataclasses.dataclass(frozen=True)
class SamplingSettings:
    steps: int
    guidance_scale: float
    scheduler: str = "unipc"  # "unipc" (the paper) | "ddim" | "dpm"
    guidance_interval: tuple[float, float] = (0.0, 1.0)  # fractions of the steps with classifier-free guidance

    def guidance(self) -> dict:
        """The pipeline's classifier-free guidance arguments (``guidance_scale``, ``guidance_interval``)."""
        return {"guidance_scale": self.guidance_scale, "guidance_interval": self.guidance_interval}


@dataclasses.dataclass(frozen=True)
class ClassifierSettings:
    """The downstream classifier: torchvision's DenseNet architecture (DenseNet-121 by default) and its training."""

    block_config: tuple[int, ...] = (6, 12, 24, 16)  # DenseNet-121; the CPU presets use a shallower DenseNet
    growth_rate: int = 32
    num_init_features: int = 64
    image_size: int = 224  # input resolution (px); images are resized to it
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4


@dataclasses.dataclass(frozen=True)
class EvaluationSettings:
    """Sizes of the evaluation protocols (chapters 05-10)."""

    conditions: int  # training readings whose report and controls condition each configuration's samples
    diversity_pairs: int  # of those, how many get a second sample with another seed (MS-SSIM diversity)
    sampling_steps: int  # denoising steps for the evaluation samples
    tail_samples: int  # generated images added per tail class (long-tail protocol)
    bootstrap: int  # bootstrap replicates for confidence intervals
    test_cases: int  # readings of the held-out phantom test cohort for the classifiers (real data: label CSVs)
    segmenter_epochs: int  # the finding segmenter used to locate findings in generated images
    classifier: ClassifierSettings
    placement_readings: int = 100  # held-out readings with one focal finding (gaze-placement protocol)
    placement_donors: int = 16  # held-out readings without findings lending their anatomy (Rad-CN controls)


@dataclasses.dataclass(frozen=True)
class Preset:
    """Scale settings of a run; later stages read the fields that concern them."""

    name: str
    purpose: str
    seed: int
    phantom_cases: int  # readings in the generated phantom data set (when no real data is given)
    phantom_size: tuple[int, int]  # phantom image (height, width)
    control_size: int  # square control-map and generated-image resolution (px)
    device: str  # "cpu", "cuda" or "auto"
    model: ModelSettings
    train: TrainSettings
    sampling: SamplingSettings
    controls: tuple[str, ...]  # the generator's controls: Rad-CN group, HVA-CN (gaze), and our texture map
    evaluation: EvaluationSettings
    hva: str = "gaze"  # the HVA-CN control of the paper's configurations: "gaze" (whole reading) or "gaze_findings"
    pipeline: str = ""  # the saved pipeline chapters 04-10 sample by default ("": the networks chapter 03 trains)


_GENERATOR_CONTROLS = ("canny", "lungs", "gaze", "texture:glcm_Contrast")

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "smoke", "tests and nbval: seconds per notebook", 0, 12, (288, 240), 32, "cpu",
            ModelSettings((16, 32), (False, True), norm_num_groups=8, max_prompt_tokens=32),
            TrainSettings(base_steps=4, controlnet_steps=3, batch_size=4, base_learning_rate=1e-3,
                          controlnet_learning_rate=1e-3, checkpoint_every=2, validate_every=4, warmup_steps=1),
            SamplingSettings(steps=4, guidance_scale=2.0),
            ("canny", "gaze"),
            EvaluationSettings(conditions=6, diversity_pairs=2, sampling_steps=2, tail_samples=2, bootstrap=50, test_cases=16,
                               segmenter_epochs=1,
                               classifier=ClassifierSettings((1, 1, 1, 1), 8, 16, image_size=32, epochs=1, batch_size=8),
                               placement_readings=4, placement_donors=2),
        ),
        Preset(
            "cpu", "the README's book build on a laptop CPU", 0, 120, (576, 480), 64, "cpu",
            ModelSettings((32, 64, 128), (False, False, True)),
            # chapter 3's from-scratch demonstration, sized to the book's 40 min budget (the evaluation chapters
            # sample the shipped checkpoint, trained 6x / 7.5x longer)
            TrainSettings(base_steps=200, controlnet_steps=40, batch_size=8, base_learning_rate=1e-3,
                          controlnet_learning_rate=5e-4, checkpoint_every=40, validate_every=100),
            # guidance on the first half of the steps: on the selection readings at 8 steps, 1.35x the images/s
            # of guidance on every step with the same gaze placement and FRD (book/method.md, "Sampling budget")
            SamplingSettings(steps=25, guidance_scale=2.0, guidance_interval=(0.0, 0.5)),
            # HVA-CN reads the gaze while findings were named: on the shipped model's selection readings it places
            # findings far better than the whole reading's gaze (book/method.md, "Gaze placement")
            ("canny", "lungs", "gaze_findings", "texture:glcm_Contrast"),
            EvaluationSettings(conditions=32, diversity_pairs=8, sampling_steps=8, tail_samples=12, bootstrap=500, test_cases=200,
                               segmenter_epochs=20,
                               classifier=ClassifierSettings((2, 4, 8, 6), image_size=64, epochs=15, batch_size=32)),
            hva="gaze_findings",
            pipeline="radgazegen/weights/phantom-64",  # the shipped checkpoint (README, "The shipped phantom checkpoint")
        ),
        Preset(
            "shipped", "the shipped phantom checkpoint radgazegen/weights/phantom-64: the cpu model on 5x the data, trained 6x longer",
            0, 600, (576, 480), 64, "auto",
            ModelSettings((32, 64, 128), (False, False, True)),
            TrainSettings(base_steps=1200, controlnet_steps=300, batch_size=8, base_learning_rate=1e-3,
                          controlnet_learning_rate=5e-4, checkpoint_every=100, validate_every=100,
                          ema_decay=0.999, snapshots=True),
            SamplingSettings(steps=25, guidance_scale=2.0),
            ("canny", "lungs", "gaze", "gaze_findings", "texture:glcm_Contrast"),
            EvaluationSettings(conditions=32, diversity_pairs=8, sampling_steps=8, tail_samples=12, bootstrap=500, test_cases=200,
                               segmenter_epochs=20,
                               classifier=ClassifierSettings((2, 4, 8, 6), image_size=64, epochs=15, batch_size=32)),
        ),
        Preset(
            "gpu", "one Colab / workstation GPU", 0, 600, (576, 480), 256, "auto",
            ModelSettings((64, 128, 256, 256), (False, False, True, True), norm_num_groups=32),
            TrainSettings(base_steps=20000, controlnet_steps=5000, batch_size=8, base_learning_rate=2e-4,
                          controlnet_learning_rate=1e-4, checkpoint_every=1000, validate_every=1000,
                          gradient_accumulation=4,  # an effective batch of 32 within a 16 GB Colab T4
                          mixed_precision="fp16", ema_decay=0.999, warmup_steps=500),
            SamplingSettings(steps=50, guidance_scale=3.0),
            _GENERATOR_CONTROLS,
            EvaluationSettings(conditions=400, diversity_pairs=100, sampling_steps=50, tail_samples=100, bootstrap=1000, test_cases=1000,
                               segmenter_epochs=40, classifier=ClassifierSettings(image_size=256, epochs=20, batch_size=64)),
        ),
        Preset(
            "paper", "real REFLACX + MIMIC-CXR with local Stable Diffusion 1.5 weights", 0, 0, (576, 480), 512, "auto",
            ModelSettings((320, 640, 1280, 1280), (True, True, True, False), norm_num_groups=32, max_prompt_tokens=77),
            TrainSettings(base_steps=30000, controlnet_steps=20000, batch_size=4, base_learning_rate=1e-5,
                          controlnet_learning_rate=1e-5, checkpoint_every=2000, validate_every=2000,
                          gradient_accumulation=4, mixed_precision="fp16", gradient_checkpointing=True,
                          adam_8bit=True, ema_decay=0.9999, prompt_dropout=0.05, warmup_steps=500,
                          location_dropout=0.0),  # the paper trains on whole reports
            SamplingSettings(steps=50, guidance_scale=7.5),
            ("canny", "sobel", "log", "lungs", "gaze"),
            EvaluationSettings(conditions=2000, diversity_pairs=500, sampling_steps=50, tail_samples=500, bootstrap=1000, test_cases=0,
                               segmenter_epochs=40, classifier=ClassifierSettings(image_size=512, epochs=30, batch_size=32)),
        ),
    )
}  # fmt: skip


AUTO = "auto"
"""The notebooks' default preset name: ``gpu`` when torch sees a CUDA GPU (e.g. a Colab GPU runtime), else ``cpu``."""


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (or :data:`AUTO`); raises ``KeyError`` listing the known names."""
    if name == AUTO:
        import torch

        name = "gpu" if torch.cuda.is_available() else "cpu"
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)} or {AUTO!r}") from None
