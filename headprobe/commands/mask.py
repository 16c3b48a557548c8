"""``headprobe mask [TEXT] [--top-k K] [--json] [--diagrams DIR]``: predict each ``[MASK]``.

For every ``[MASK]`` the K most probable wordpieces are printed as the original mask.py prints
them: the sentence with that mask replaced by the prediction, followed by its probability (the
softmax over the vocabulary). ``--json`` prints, per text, one line
``[{"position": i, "predictions": [{"token": "book", "score": 0.41}, ...]}, ...]`` (``position``
is the wordpiece index, ``[CLS]`` = 0). Without TEXT it asks ``Text: `` on a terminal, and reads
one text a line until end of input when standard input is not a terminal (blank lines skipped).
Every text is checked (has a mask, fits the model) before anything runs, and so is every
diagram's place under ``--diagrams`` (not a named pipe, a device or a folder where a file goes;
`headprobe.commands.show.check_diagrams`), the folder itself before the model loads.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from headprobe.commands.common import loaded_model
from headprobe.commands.show import check_diagrams, write_diagrams
from headprobe.errors import UsageError
from headprobe.model.tokenize import MASK_IN_TEXT
from headprobe.outputs import check_folder
from headprobe.settings import add_model_option, add_tokenizer_option

DEFAULT_TOP_K = 3


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "mask", help="predict the words hidden by [MASK]",
        description="Print the top-K predictions for each [MASK] in TEXT, as the original "
                    "mask.py does. Needs a checkpoint with the masked-LM head "
                    "(a *ForMaskedLM checkpoint such as bert-base-uncased).",
        epilog="Example: headprobe mask 'Then I picked up a [MASK] from the table.'")
    parser.add_argument("text", metavar="TEXT", nargs="?",
                        help="text with one or more [MASK]; if omitted, asked for (Text: ) or "
                             "read line by line from standard input")
    parser.add_argument("--top-k", "-k", type=int, default=DEFAULT_TOP_K, metavar="K",
                        help=f"predictions per mask (default {DEFAULT_TOP_K})")
    parser.add_argument("--json", action="store_true",
                        help="print JSON: one array of masks per text, one text a line")
    parser.add_argument("--diagrams", metavar="DIR",
                        help="also write Attention_Layer{L}_Head{H}.png per head and overview.png "
                             "(one subfolder per text when there are several)")
    add_model_option(parser.add_argument)
    add_tokenizer_option(parser.add_argument)
    return parser


@dataclass(frozen=True)
class Prediction:
    token: str  # readable: BERT's wordpiece as it is, other tokenizers' decoded text
    score: float
    id: int | None = None


@dataclass(frozen=True)
class MaskPredictions:
    """The predictions for the mask at wordpiece ``position`` (``[CLS]`` = 0), best first."""

    position: int
    predictions: tuple[Prediction, ...]

    def to_json(self) -> dict:
        return {"position": self.position,
                "predictions": [{"token": p.token, "score": round(p.score, 6), "id": p.id}
                                for p in self.predictions]}


def run(args: argparse.Namespace) -> int:
    if args.top_k < 1:
        raise UsageError(f"--top-k: expected a positive number of predictions, got {args.top_k}")
    texts = [args.text] if args.text is not None else read_texts()
    if args.diagrams:  # before the model loads: a place that cannot be written fails at once
        check_folder(args.diagrams, "--diagrams")
    model = loaded_model(args.model, args.tokenizer)
    require_mlm_head(model)
    positions = [check_text(model, text, encoding) for text, encoding
                 in zip(texts, model.tokenize(texts))]
    folders = diagram_folders(args.diagrams, len(texts)) if args.diagrams else []
    for folder in folders:  # every diagram's place, before anything runs or is written
        check_diagrams(folder, model.num_layers, model.num_heads, "--diagrams")
    top_k = min(args.top_k, model.tokenizer.vocab_size)
    runs = model.run(texts, hidden_states=False, mlm_logits=True)
    for number, (text, sentence_run, masks) in enumerate(zip(texts, runs, positions)):
        assert sentence_run.mlm_logits is not None  # require_mlm_head
        ids = top_predictions(sentence_run.mlm_logits, masks, top_k)
        found = [MaskPredictions(position, tuple(
                    Prediction(token, score, i) for token, (i, score) in
                    zip(model.tokenizer.readable_tokens([i for i, _ in best]), best)))
                 for position, best in zip(masks, ids)]
        if args.json:
            print(json.dumps([m.to_json() for m in found], ensure_ascii=False))
        else:
            if number:
                print()
            print("\n".join(format_predictions(text, written_mask(text, model), found)))
        if folders:
            folder = folders[number]
            paths = write_diagrams(sentence_run, folder, model_name=model.name,
                                   option="--diagrams", windows=model.windows)
            print(f"{len(paths)} diagrams written to {folder}", file=sys.stderr)
    sys.stdout.flush()
    return 0


def diagram_folders(diagrams: str, count: int) -> list[Path]:
    """``--diagrams DIR`` itself for one text, else ``DIR/text1``, ``DIR/text2``, ..."""
    if count == 1:
        return [Path(diagrams)]
    return [Path(diagrams) / f"text{number}" for number in range(1, count + 1)]


# --------------------------------------------------------------------------------------------
# Input.

def read_texts(stdin=None) -> list[str]:
    """``Text: `` once on a terminal (like mask.py); else every non-blank line until EOF."""
    stream = sys.stdin if stdin is None else stdin
    if stream.isatty():
        try:
            texts = [input("Text: ")]
        except EOFError:
            texts = []
    else:
        texts = [line.rstrip("\r\n") for line in stream]
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise UsageError("no text given: pass TEXT, type it at the 'Text: ' prompt, or pipe "
                         "one text a line on standard input")
    return texts


def require_mlm_head(model) -> None:
    if not model.has_mlm_head:
        raise UsageError(
            f"{model.name} has no masked-LM head (its checkpoint holds only the encoder), so it "
            f"cannot predict [MASK]. Use a *ForMaskedLM checkpoint such as bert-base-uncased: "
            f"headprobe mask --model bert-base-uncased ...")


def check_text(model, text: str, encoding) -> list[int]:
    """The token positions of the masks in ``text``; raises for no mask or too long."""
    mask_token = model.tokenizer.mask_token
    positions = [int(i) for i in np.flatnonzero(
        encoding.specials.where("mask", encoding.tokens, encoding.input_ids))]
    if not positions:
        also = f" (or {mask_token}, this model's own)" if mask_token != MASK_IN_TEXT else ""
        raise UsageError(f"Input must include mask token {MASK_IN_TEXT}{also}. "
                         f"Got {_shown(text)}")
    if len(encoding.tokens) > model.max_length:
        raise UsageError(
            f"text {_shown(text)} is {len(encoding.tokens)} tokens long with its special tokens; "
            f"{model.name} takes at most {model.max_length}. Shorten it.")
    return positions


def written_mask(text: str, model) -> str:
    """How the masks are written in ``text``: ``[MASK]``, or the model's own mask token."""
    return MASK_IN_TEXT if MASK_IN_TEXT in text else model.tokenizer.mask_token


def _shown(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


# --------------------------------------------------------------------------------------------
# Predictions (pure).

def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities over the last axis, computed in float64."""
    shifted = np.asarray(logits, dtype=np.float64)
    shifted = shifted - shifted.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def top_predictions(logits: np.ndarray, positions: Sequence[int], k: int
                    ) -> list[list[tuple[int, float]]]:
    """For each position of ``logits`` ``[token, vocab]``: ``(token id, probability)`` of the k
    most probable ids, best first (ties: the lower id first)."""
    if logits is None:
        raise UsageError("the model gave no masked-LM logits; it has no masked-LM head")
    out = []
    for position in positions:
        probabilities = softmax(logits[position])
        order = np.argsort(-probabilities, kind="stable")[:k]
        out.append([(int(i), float(probabilities[i])) for i in order])
    return out


def format_predictions(text: str, mask_token: str, found: Sequence[MaskPredictions]
                       ) -> list[str]:
    """mask.py's lines: the text with one mask replaced by each prediction, and its probability.

    With several masks, each gets a heading and only its own mask is replaced.
    """
    starts = _occurrences(text, mask_token)
    lines: list[str] = []
    for number, masks in enumerate(found):
        indent = ""
        if len(found) > 1:
            lines.append(f"{mask_token} {number + 1} of {len(found)} "
                         f"(wordpiece {masks.position}):")
            indent = "  "
        for prediction in masks.predictions:
            word = prediction.token    # as mask.py's tokenizer.decode([id]) shows a piece
            if len(starts) == len(found):
                start = starts[number]
                sentence = text[:start] + word + text[start + len(mask_token):]
            else:
                sentence = text.replace(mask_token, word)
            lines.append(f"{indent}{sentence}   ({prediction.score:.3f})")
    return lines


def _occurrences(text: str, needle: str) -> list[int]:
    starts, at = [], text.find(needle)
    while at >= 0:
        starts.append(at)
        at = text.find(needle, at + len(needle))
    return starts

