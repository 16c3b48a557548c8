"""One module per ``headprobe`` subcommand: ``add_parser(subparsers)`` and ``run(args) -> int``."""
