"""Benchmark harness only (GPU image): hide the packages that a clean `pip install mrsuperres[sr]` does not have.

The GPU machines' image holds 150+ packages (transformers, JAX, Lightning, ...). MONAI imports every optional
package it finds: there `import monai` takes 22 s, against 8 s for `import torch, monai` with the 43 import
names below hidden (benchmarks/results/cuda-import-times.md). Put this folder first on PYTHONPATH to time
the command line as a user's clean install would run it; the listed imports then fail fast, as they do there.
"""

import sys

NOT_IN_A_CLEAN_INSTALL = (
    "accelerate", "clearml", "cupy", "cv2", "einops", "fire", "flax", "h5py", "huggingface_hub", "ignite", "imageio",
    "jax", "jaxlib", "lazy_loader", "lightning", "lpips", "mlflow", "nibabel", "numba", "onnx", "onnxruntime",
    "onnxscript", "optuna", "pandas", "peft", "psutil", "pydantic", "pynvml", "pytorch_lightning",
    "sentence_transformers", "skimage", "sklearn", "tensorboard", "tensorflow", "tifffile", "timm", "torchaudio",
    "torchmetrics", "torchvision", "tqdm", "transformers", "yaml", "zarr",
)
for name in NOT_IN_A_CLEAN_INSTALL:
    sys.modules[name] = None
