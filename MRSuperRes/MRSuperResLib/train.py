"""Training loop: synthetic slices -> physics degradation -> RestorationNet, with fixed seeds.

Writes <output>/<model_id>.pt (state dict, loadable with weights_only=True), <model_id>.json (model card)
and <model_id>.log (losses). Stops at `max_steps` or `time_limit_minutes`, whichever comes first.
"""

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_CONFIG = {
    "model_id": "mrsr-unet32-2p5d-v1",
    "architecture": "unet32",
    "context_slices": 3,
    "batch_size": 24,
    "synth_size": 192,
    "crop": 128,
    "learning_rate": 3e-4,
    "max_steps": 40000,
    "time_limit_minutes": 8.5,
    "seed": 20261122,
    "log_every": 100,
    "sources": None,  # synthetic source mix and pixel sizes (None: training_data.DEFAULT_SOURCES)
    "init_weights": None,  # optional .pt state dict to continue from (a second training stage)
    # Training steps per synthesised batch, each with its own degradation (and flip/transpose): synthesis
    # costs more than a step, and one clean scene under different scales and noise is still a new example.
    "degradations_per_batch": 1,
    "fine_texture": None,  # voxel-scale texture of the truth (None: training_data.DEFAULT_FINE_TEXTURE)
    "lesions": None,  # lesion-like blobs of the truth (None: training_data.DEFAULT_LESIONS)
    "blind_blur": None,  # probabilities of blur the input grid cannot explain (None: training_pairs.BLIND_BLUR)
    # "l1" predicts the posterior median, "l2" its mean: where a small feature is more likely noise than not, the
    # median drops it and the mean keeps it at reduced contrast (PSNR is a squared error).
    "loss": "l1",
    # Extra weight of the error where the truth has fine detail (|truth - its 3 x 3 mean|, in units of the
    # input's 99th percentile): 0 = plain loss. Counters the smoothing of small bright or dark spots.
    "detail_weight": 0.0,
    # Condition the network on slice spacing / pixel size (network.py): for 2.5D models, whose neighbours tell
    # more the closer they lie.
    "spacing_condition": False,
    # Train the 3D denoiser of the measured band (volume_denoiser.py) instead: `architecture` is one of its presets,
    # context_slices its depth (a multiple of 16) and crop its in-plane window on the scanner's grid.
    "volumetric": False,
}
LOSSES = ("l1", "l2")


@dataclass
class TrainingSummary:
    model_id: str
    architecture: str
    context_slices: int
    parameters: int
    steps: int
    seconds: float
    device: str
    final_loss: float
    validation_l1_model: float
    validation_l1_zip_input: float


def load_config(path=None, overrides=None) -> dict:
    config = dict(DEFAULT_CONFIG)
    if path:
        config.update(json.loads(Path(path).read_text()))
    config.update({k: v for k, v in (overrides or {}).items() if v is not None})
    unknown = set(config) - set(DEFAULT_CONFIG)
    if unknown:
        raise ValueError(f"unknown training config keys: {sorted(unknown)}")
    from .training_data import DEFAULT_FINE_TEXTURE, DEFAULT_LESIONS
    from .training_pairs import BLIND_BLUR

    if config["volumetric"] and (config["context_slices"] % 16 or config["detail_weight"]):
        raise ValueError("a volumetric model needs context_slices a multiple of 16 and no detail_weight")
    if config["loss"] not in LOSSES:
        raise ValueError(f"training loss must be one of {LOSSES}, got {config['loss']!r}")
    for key, defaults in (("blind_blur", BLIND_BLUR), ("fine_texture", DEFAULT_FINE_TEXTURE), ("lesions", DEFAULT_LESIONS)):
        unknown = set(config[key] or {}) - set(defaults)
        if unknown:
            raise ValueError(f"unknown {key} keys in the training config: {sorted(unknown)}; known: {sorted(defaults)}")
    return config


def training_loss(prediction, target, kind="l1", weight=None):
    """Mean absolute ("l1") or squared ("l2") error, optionally weighted per pixel."""
    error = prediction - target
    error = error.square() if kind == "l2" else error.abs()
    return error.mean() if weight is None else (error * weight).sum() / weight.sum()


def detail_weights(truth, strength):
    """1 + strength x |truth - its 3 x 3 mean| for (B, 1, H, W) truths (None when strength is 0)."""
    import torch.nn.functional as F

    if not strength:
        return None
    local_mean = F.avg_pool2d(F.pad(truth, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return 1 + strength * (truth - local_mean).abs()


def _synthesizer(bank, config, generator):
    """The clean-slice source of a config (training and validation draw from the same settings)."""
    from .training_data import SliceSynthesizer

    return SliceSynthesizer(bank, size=config["synth_size"], context=config["context_slices"], generator=generator,
                            sources=config["sources"], fine_texture=config["fine_texture"], lesions=config["lesions"])


def _validation_batches(bank, config, device, count=4):
    """A fixed validation set (own seed), one batch per scale plus a mixed one."""
    import torch

    generator = torch.Generator(device=device).manual_seed(config["seed"] + 1)
    synthesizer = _synthesizer(bank, config, generator)
    batches = []
    for scale in (1, 2, 3, None)[:count]:
        clean, pixel, spacing = synthesizer.sample(config["batch_size"])
        batch = _pairs(config)(clean, generator, config["crop"], scale=scale, blind_blur=config["blind_blur"])
        batches.append({**batch, "spacing_ratio": _spacing_ratio(batch, spacing, pixel)})
    return batches


def _pairs(config):
    from .training_pairs import make_training_pairs, make_volume_pairs

    return make_volume_pairs if config["volumetric"] else make_training_pairs


def _spacing_ratio(batch, spacing, pixel):
    """Slice spacing / pixel size of the grid the network sees (what a spacing-conditioned network is told): the
    clean pixel for the slice networks (they see the output grid), the scanner's for the volume denoiser."""
    return spacing / (pixel * batch.get("pixel_factor", 1.0))


def _network(config):
    from .network import RestorationNet
    from .volume_denoiser import VolumeDenoiserNet

    if config["volumetric"]:
        return VolumeDenoiserNet(config["architecture"])
    return RestorationNet(config["architecture"], config["context_slices"], config["spacing_condition"])


def _flipped(clean, repeat: int):
    """The repeat-th view of a (B, C, H, W) batch: as is, transposed, flipped, both (in-plane symmetries)."""
    if repeat % 2:
        clean = clean.transpose(-1, -2)
    if (repeat // 2) % 2:
        clean = clean.flip(-1)
    return clean


def train(template_dir, output_dir, config: dict, log=print) -> TrainingSummary:
    import torch

    from .network import parameter_count
    from .training_data import TemplateBank

    torch.manual_seed(config["seed"])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    bank = TemplateBank(template_dir, device=device)
    generator = torch.Generator(device=device).manual_seed(config["seed"])
    synthesizer = _synthesizer(bank, config, generator)
    validation = _validation_batches(bank, config, device)

    model = _network(config)
    if config["init_weights"]:
        model.load_state_dict(torch.load(config["init_weights"], map_location="cpu", weights_only=True))
    model = model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config["learning_rate"], weight_decay=1e-4)
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    log_path = output_dir / f"{config['model_id']}.log"
    log_file = log_path.open("w")

    def emit(message):
        log(message)
        log_file.write(message + "\n")
        log_file.flush()

    emit(f"config {json.dumps(config)}")
    emit(f"device {device} parameters {parameter_count(model)}")
    start = time.time()
    time_limit = config["time_limit_minutes"] * 60
    running, step = None, 0
    while step < config["max_steps"] and time.time() - start < time_limit:
        # Cosine decay over the expected run length (time-based so the schedule ends on time).
        progress = min(1.0, max(step / config["max_steps"], (time.time() - start) / time_limit))
        for group in optimizer.param_groups:
            group["lr"] = config["learning_rate"] * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))
        with torch.no_grad():
            clean, pixel, spacing = synthesizer.sample(config["batch_size"])
        for repeat in range(min(config["degradations_per_batch"], config["max_steps"] - step)):
            with torch.no_grad():
                batch = _pairs(config)(_flipped(clean, repeat), generator, config["crop"],
                                       blind_blur=config["blind_blur"])
            with autocast:  # in-plane flips leave the spacing ratio as it is
                prediction = model(batch["inputs"], batch["condition"], _spacing_ratio(batch, spacing, pixel))
            loss = training_loss(prediction.float(), batch["target"], config["loss"],
                                 detail_weights(batch["truth"], config["detail_weight"]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            if step % config["log_every"] == 0:
                emit(f"step {step} loss {running:.5f} lr {optimizer.param_groups[0]['lr']:.2e} elapsed {time.time() - start:.0f}s")

    model.eval()
    with torch.no_grad(), autocast:
        model_l1 = sum((model(b["inputs"], b["condition"], b["spacing_ratio"]).float() - b["target"]).abs().mean().item()
                       for b in validation)
        centre = config["context_slices"] // 2
        unrestored = (lambda b: b["inputs"]) if config["volumetric"] else (lambda b: b["inputs"][:, centre : centre + 1])
        zip_l1 = sum((unrestored(b) - b["target"]).abs().mean().item() for b in validation)
    summary = TrainingSummary(
        model_id=config["model_id"],
        architecture=config["architecture"],
        context_slices=config["context_slices"],
        parameters=parameter_count(model),
        steps=step,
        seconds=round(time.time() - start, 1),
        device=torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        final_loss=round(running or float("nan"), 6),
        validation_l1_model=round(model_l1 / len(validation), 6),
        validation_l1_zip_input=round(zip_l1 / len(validation), 6),
    )
    emit(f"summary {json.dumps(asdict(summary))}")
    weights_path = output_dir / f"{config['model_id']}.pt"
    temporary = weights_path.with_suffix(".pt.tmp")
    torch.save({k: v.detach().float().cpu() for k, v in model.state_dict().items()}, temporary)
    temporary.replace(weights_path)
    card = {"config": config, "training": asdict(summary)}
    (output_dir / f"{config['model_id']}.json").write_text(json.dumps(card, indent=2))
    log_file.close()
    return summary
