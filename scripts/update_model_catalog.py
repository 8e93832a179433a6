"""Add or refresh a trained model in MRSuperRes/Resources/Models/Models.json from its training output.

Usage: python scripts/update_model_catalog.py TRAINING_DIR MODEL_ID [--default-for cuda|cpu ...] [--description TEXT]
Copies <MODEL_ID>.pt into Resources/Models, records its SHA-256, parameters and training summary.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "MRSuperRes"), str(ROOT / "MRQualityMetrics")]

from MRQualityMetricsLib.atomic_files import write_text_atomic  # noqa: E402
from MRSuperResLib.model_catalog import CATALOG_NAME, models_dir, sha256_of  # noqa: E402

TRAINING_DATA = (
    "Synthetic images generated from deepmriprep 0.3.0 Template_05mm_bet (MIT) and nilearn 0.14.1 "
    "MNI152 2009a T1/GM/WM maps (BSD-3 + MNI notice); no patient data"
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("training_dir", type=Path)
    parser.add_argument("model_id")
    parser.add_argument("--default-for", nargs="*", default=None, choices=("cuda", "cpu"),
                        help="devices this model is the default for (default: keep the entry's, none for a new one)")
    parser.add_argument("--description", default=None, help="default: keep the entry's description")
    args = parser.parse_args()
    folder = models_dir()
    card = json.loads((args.training_dir / f"{args.model_id}.json").read_text())
    weights = folder / f"{args.model_id}.pt"
    if (args.training_dir / weights.name).resolve() != weights.resolve():
        shutil.copyfile(args.training_dir / weights.name, weights)
    catalog_path = folder / CATALOG_NAME
    catalog = json.loads(catalog_path.read_text()) if catalog_path.exists() else {"models": []}
    # Refresh an existing entry in place: hand-written fields (timing, recipe, description) stay.
    entry = next((m for m in catalog["models"] if m["id"] == args.model_id), None)
    if entry is None:
        entry = {"id": args.model_id, "scales": [1, 2, 3], "description": "",
                 "contrasts": ["T1", "T1 post-contrast", "T2", "FLAIR", "PD"], "training_data": TRAINING_DATA,
                 "licence": "Apache-2.0"}
        catalog["models"].append(entry)
    entry.update(file=weights.name, sha256=sha256_of(weights), architecture=card["config"]["architecture"],
                 context_slices=card["config"]["context_slices"], parameters=card["training"]["parameters"],
                 training={**entry.get("training", {}), **card["training"]})
    if args.default_for is not None:
        entry["default_for"] = args.default_for
    entry.setdefault("default_for", [])
    if args.description is not None:
        entry["description"] = args.description
    for other in catalog["models"]:  # a device has one default
        if other is not entry:
            other["default_for"] = [d for d in other.get("default_for", []) if d not in entry["default_for"]]
    write_text_atomic(catalog_path, json.dumps(catalog, indent=2) + "\n")
    print(f"{args.model_id}: {entry['sha256']} ({weights.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
