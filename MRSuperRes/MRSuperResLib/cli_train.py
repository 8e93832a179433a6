"""Train a restoration model on synthetic data from the templates (run `mrsuperres fetch-data` first)."""


def add_arguments(parser):
    parser.add_argument("--config", help="JSON file overriding the default training configuration")
    parser.add_argument("--templates", default="data/templates", help="folder with the training templates")
    parser.add_argument("--output", default="out/training", help="folder for weights, model card and log")
    parser.add_argument("--model-id", help="override the config's model id")
    parser.add_argument("--architecture", choices=["unet16", "unet32", "unet48"],
                        help="override the config's architecture (network.ARCHITECTURES)")
    parser.add_argument("--context-slices", type=int, help="1 (2D) or 3 (2.5D)")
    parser.add_argument("--minutes", type=float, dest="time_limit_minutes", help="training time limit")
    parser.add_argument("--max-steps", type=int, help="training step limit")
    parser.add_argument("--batch-size", type=int, help="slices per step")
    parser.add_argument("--seed", type=int, help="random seed")
    parser.add_argument("--init-weights", help="continue training from this state dict (.pt)")
    parser.add_argument("--learning-rate", type=float, help="peak learning rate")


def run(args) -> int:
    from .train import load_config, train

    overrides = {
        "model_id": args.model_id,
        "architecture": args.architecture,
        "context_slices": args.context_slices,
        "time_limit_minutes": args.time_limit_minutes,
        "max_steps": args.max_steps,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "init_weights": args.init_weights,
        "learning_rate": args.learning_rate,
    }
    summary = train(args.templates, args.output, load_config(args.config, overrides), log=lambda m: print(m, flush=True))
    print(f"wrote {args.output}/{summary.model_id}.pt ({summary.parameters} parameters, {summary.steps} steps)")
    return 0
