"""The model catalogue (Resources/Models/Models.json) and safe weight loading.

Weights are never unpickled as code: the SHA-256 recorded in the catalogue is checked first, then the file
is read with torch.load(weights_only=True). The folder can be overridden (argument or the
MRSUPERRES_MODELS_DIR environment variable) for offline placement or tests.
"""

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MODELS_DIR = Path(__file__).resolve().parents[1] / "Resources" / "Models"
CATALOG_NAME = "Models.json"


@dataclass
class ModelInfo:
    id: str
    file: Path
    sha256: str
    architecture: str
    context_slices: int
    scales: list
    description: str = ""
    contrasts: list = field(default_factory=list)
    parameters: int = 0
    default_for: list = field(default_factory=list)  # devices ("cuda", "cpu") this model is the default on
    spacing_condition: bool = False  # the network is told slice spacing / pixel size (network.py)
    details: dict = field(default_factory=dict)  # training data, licence, measured times, ...


def models_dir(directory=None) -> Path:
    return Path(directory or os.environ.get("MRSUPERRES_MODELS_DIR") or DEFAULT_MODELS_DIR)


def list_models(directory=None) -> list:
    folder = models_dir(directory)
    catalog_path = folder / CATALOG_NAME
    try:
        entries = json.loads(catalog_path.read_text())["models"]
    except FileNotFoundError as error:
        raise ValueError(f"model catalogue not found: {catalog_path}") from error
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"model catalogue {catalog_path} is malformed: {error}") from error
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"model catalogue {catalog_path} is malformed: 'models' must be a non-empty list")
    known = set(ModelInfo.__dataclass_fields__)
    models = []
    for index, entry in enumerate(entries):
        try:
            core = {k: v for k, v in entry.items() if k in known and k != "details"}
            core["file"] = folder / entry["file"]
            core["details"] = {k: v for k, v in entry.items() if k not in known}
            models.append(ModelInfo(**core))
        except (AttributeError, KeyError, TypeError) as error:  # an entry that is not an object or lacks fields
            raise ValueError(f"model catalogue {catalog_path} is malformed: entry {index}: {error!r}") from error
    return models


def get_model(model_id=None, device="cuda", directory=None) -> ModelInfo:
    """The model with this id, or the catalogue's default for the device type ("cuda" or "cpu")."""
    models = list_models(directory)
    if model_id:
        for info in models:
            if info.id == model_id:
                return info
        raise ValueError(f"unknown model {model_id!r}; available: {', '.join(m.id for m in models)}")
    for info in models:
        if device in info.default_for:
            return info
    return models[0]


def sha256_of(path) -> str:
    """SHA-256 of a file, read in blocks (weights and downloaded data files)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_weights(info: ModelInfo) -> dict:
    """State dict of a catalogue model after verifying its checksum: the bytes checked are the bytes loaded."""
    import io

    import torch

    if not info.file.is_file():
        raise ValueError(f"weights file of model {info.id} not found: {info.file}")
    data = info.file.read_bytes()  # one read: the file cannot change between the check and the load
    actual = hashlib.sha256(data).hexdigest()
    if actual != info.sha256:
        raise ValueError(
            f"checksum mismatch for {info.file} (model {info.id}): expected SHA-256 {info.sha256}, got {actual}; "
            "the file is corrupt or was replaced — reinstall the extension or restore the file"
        )
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def build_model(info: ModelInfo):
    """A RestorationNet with the catalogue model's verified weights, in eval mode on the CPU."""
    from .network import RestorationNet

    model = RestorationNet(info.architecture, info.context_slices, info.spacing_condition)
    model.load_state_dict(load_weights(info), strict=True)
    return model.eval()
