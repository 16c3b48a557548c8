"""``headprobe profile [--model SPEC] [--sentences FILE] [--level L] [-o FILE.json]``: every
head's standard statistics over a sentence set (SPEC §11).

Without ``-o`` the profile's JSON goes to stdout; with it, to the file, and a line says where
(a path that cannot be written, such as a folder, a device or a named pipe, is an error before
the model runs).
Without ``--sentences``, the bundled English sentence set. A model already profiled (or checked)
on those sentences is read from the forward cache: the model does not run.
"""

from __future__ import annotations

import argparse
import json
import sys

from headprobe.commands.common import add_model_options, command_context
from headprobe.engine.profiling import compute_profile
from headprobe.outputs import check_file
from headprobe.regression.profiles import write_profile
from headprobe.sentence_sets import load_sentences


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "profile", help="every head's standard statistics over a sentence set",
        description="Profile every head of a model: argmax and mass on the previous, next, "
                    "self, +-2 and +-3 positions, [CLS], [SEP], punctuation and the same word, "
                    "and the entropy of its rows, pooled over the sentences (SPEC §11); the "
                    "size of what it writes, output-norm (SPEC §14.3).",
        epilog="Example: headprobe profile --model sentence-transformers/all-MiniLM-L6-v2 "
               "-o minilm.profile.json")
    add_model_options(parser)
    parser.add_argument("-o", "--output", metavar="FILE.json",
                        help="write the profile here (default: stdout)")
    parser.add_argument("--effects", action="store_true",
                        help="also measure effect:hidden, what removing each head (mean "
                             "ablation) does to the last hidden state (SPEC §14.3; costs about "
                             "one forward pass per head, see docs/regression.md)")
    return parser


def run(args: argparse.Namespace) -> int:
    if args.output:  # before the model runs: a bad path fails at once
        check_file(args.output, "-o")
    context = command_context(args)
    sentences, label = load_sentences(args.sentences)
    model = context.model(args.model)
    context.check_sentences(args.model, sentences, label)
    try:
        profile = compute_profile(model, [s.text for s in sentences], level=args.level,
                                  cache=context.cache, progress=context.progress,
                                  effects=args.effects)
    finally:
        context.cache.close()
    if args.output:
        path = write_profile(profile, args.output)
        print(f"profile of {profile.model} ({len(profile.heads)} heads, {profile.count} "
              f"sentences of {label}, level {profile.level}): {path}")
    else:
        json.dump(profile.to_json(), sys.stdout, indent=1, ensure_ascii=False)
        sys.stdout.write("\n")
    return 0
