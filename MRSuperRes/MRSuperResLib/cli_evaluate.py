"""Evaluate the network against classical pipelines on simulated degradations of held-out volumes.

Writes evaluation.csv (one row per volume, scale, SNR, method), summary.md (means over volumes, hallucination
checks, timing) and figure_<volume>_x<scale>.png. Exit status 0 when every hallucination check passes, 3 if not.
Scale 1 is the denoise-only evaluation (noisy input vs NLM vs the model).
"""


def add_arguments(parser):
    parser.add_argument("--volumes", nargs="+", default=None, metavar="PATH",
                        help="truth volumes or DICOM folders (default: the held-out set: MNI152NLin6Asym T1, "
                             "SPM avg152T2/PD from data/templates, the bundled GE PD series)")
    parser.add_argument("--snr", nargs="+", type=float, default=[10.0, 20.0, 40.0], help="SNR levels (default 10 20 40)")
    parser.add_argument("--scale", nargs="+", type=int, default=[2], choices=(1, 2, 3),
                        help="scales to evaluate (default 2; 1 = denoise only)")
    parser.add_argument("--methods", nargs="+", default=None,
                        help="methods (default: zero_fill bspline bicubic nlm [bm4d] network_only model; network_only is the model without its data-consistency step)")
    parser.add_argument("--model", default=None, metavar="ID", help="model id from Models.json (default model)")
    parser.add_argument("--denoise", type=float, default=1.0, help="denoising strength given to the model (default 1)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="model device (default auto)")
    parser.add_argument("--max-slices", type=int, default=None, metavar="N",
                        help="evaluate only the N central slices of each volume (bounds the run time)")
    parser.add_argument("--seed", type=int, default=0, help="base random seed (default 0)")
    parser.add_argument("--output", "-o", default="evaluation", metavar="DIR", help="output folder (default evaluation/)")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    parser.add_argument("--no-hallucination", action="store_true", help="skip the hallucination checks")


def run(args) -> int:
    from MRSuperResLib.evaluate import EvaluationConfig, default_volumes, evaluate

    config = EvaluationConfig(
        volumes=args.volumes if args.volumes else default_volumes(),
        snrs=tuple(args.snr),
        scales=tuple(args.scale),
        methods=tuple(args.methods) if args.methods else None,
        model_id=args.model,
        denoise=args.denoise,
        device=args.device,
        max_slices=args.max_slices,
        seed=args.seed,
        output_dir=args.output,
        figures=not args.no_figures,
        hallucination=not args.no_hallucination,
    )
    result = evaluate(config)
    for path in result.files:
        print(f"wrote {path}")
    if result.hallucination_rows:
        print("hallucination checks:", "passed" if result.passed else "FAILED")
    return 0 if result.passed else 3
