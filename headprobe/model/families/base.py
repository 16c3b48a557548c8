"""What a model family is to headprobe: how its config.json is read, how its weights are named,
and which special tokens its tokenizer uses. Each family module fills in a `Family`; nothing
here knows any family by name.

A `Naming` is the small table of a family's weight names (PyTorch-style, after its base-model
prefix such as ``roberta.`` is removed): the embeddings, one layer (``{index}`` in ``layer`` is
the layer's, or ALBERT's group's, 0-based index), and the masked-LM head. `headprobe.model.
weights.convert` reads any family's weights through it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from headprobe.errors import ModelFormatError, did_you_mean
from headprobe.model.config import SUPPORTED_ACTIVATIONS, EncoderConfig


@dataclass(frozen=True)
class LayerNames:
    """One layer's weights (``Linear`` and ``LayerNorm`` names, without ``.weight``/``.bias``)."""

    query: str
    key: str
    value: str
    out: str
    attention_norm: str
    intermediate: str
    output: str
    output_norm: str


BERT_LAYER = LayerNames(query="attention.self.query", key="attention.self.key",
                        value="attention.self.value", out="attention.output.dense",
                        attention_norm="attention.output.LayerNorm",
                        intermediate="intermediate.dense", output="output.dense",
                        output_norm="output.LayerNorm")


@dataclass(frozen=True)
class Naming:
    """A family's weight names.

    Attributes:
      prefixes: base-model prefixes to strip (``bert.``).
      word, position, token_type, embedding_norm: the embeddings (token_type None: none).
      projection: the embedding-to-hidden ``Linear`` (None: no projection).
      layer: the prefix of layer (or group) ``{index}``; ``layer_names`` within it.
      mlm_marker: a name prefix whose presence means the checkpoint has the masked-LM head.
      mlm_transform, mlm_norm: the head's dense ``Linear`` and ``LayerNorm``.
      mlm_decoder: its decoder ``Linear`` (weight tied to the word embeddings unless the
        config says otherwise); mlm_bias: the output bias names, first found wins.
    """

    prefixes: tuple[str, ...]
    word: str
    position: str
    token_type: str | None
    embedding_norm: str
    projection: str | None
    layer: str
    layer_names: LayerNames
    mlm_marker: str
    mlm_transform: str
    mlm_norm: str
    mlm_decoder: str
    mlm_bias: tuple[str, ...]


@dataclass(frozen=True)
class SpecialTokens:
    """A family's special tokens, used when the tokenizer files do not name them."""

    cls: str
    sep: str
    mask: str
    unk: str
    pad: str


BERT_SPECIALS = SpecialTokens(cls="[CLS]", sep="[SEP]", mask="[MASK]", unk="[UNK]", pad="[PAD]")


@dataclass(frozen=True)
class Family:
    """One model family.

    Attributes:
      name: what docs and errors call it (``RoBERTa``).
      model_types: the ``model_type`` values it reads.
      class_prefixes: its transformers class names start with one of these (``Roberta``):
        ``architectures`` must, and any such architecture (``RobertaForSequenceClassification``,
        a fine-tune) loads its encoder.
      naming: its weights (`Naming`).
      read_config: config.json (a dict) -> `EncoderConfig`; errors name the source.
      specials: its special tokens' usual names.
      wordpiece_vocab: a folder with only ``vocab.txt`` (no tokenizer.json) is a WordPiece
        tokenizer of this family.
    """

    name: str
    model_types: tuple[str, ...]
    class_prefixes: tuple[str, ...]
    naming: Naming
    read_config: Callable[[Mapping[str, Any], str], EncoderConfig]
    specials: SpecialTokens = BERT_SPECIALS
    wordpiece_vocab: bool = False


# --- reading config.json fields -------------------------------------------------------------


def require(data: Mapping[str, Any], names: tuple[str, ...], source: str,
            family: str) -> None:
    missing = [name for name in names if name not in data]
    if missing:
        raise ModelFormatError(
            f"{source}: missing field(s) {', '.join(missing)}; a {family} config.json needs "
            f"{', '.join(names)}. Re-save the model with transformers' save_pretrained.")


def integer(data: Mapping[str, Any], name: str, source: str, *, default: int | None = None,
            minimum: int = 0) -> int:
    """A whole number ``>= minimum`` (``default`` when absent or null)."""
    value = data.get(name, default)
    if value is None and default is not None:
        value = default
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        bound = "a non-negative integer" if minimum == 0 else f"an integer >= {minimum}"
        raise ModelFormatError(f"{source}: {name}: expected {bound}, got {value!r}")
    return value


def number(data: Mapping[str, Any], name: str, source: str, default: float) -> float:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ModelFormatError(f"{source}: {name}: expected a small positive number such as "
                               f"1e-12, got {value!r}")
    return float(value)


def activation(data: Mapping[str, Any], name: str, source: str, default: str) -> str:
    value = data.get(name, default)
    if value not in SUPPORTED_ACTIVATIONS:
        raise ModelFormatError(
            f"{source}: {name}: {value!r} is not supported"
            f"{did_you_mean(str(value), SUPPORTED_ACTIVATIONS)}; supported: "
            f"{', '.join(SUPPORTED_ACTIVATIONS)}")
    return str(value)


#: transformers' encoder classes are ``{Prefix}Model`` and ``{Prefix}For{Task}``; any of them
#: holds the encoder (a fine-tuned classifier too: its head is ignored).
TASKS = ("Model", "ForMaskedLM", "ForPreTraining", "ForSequenceClassification",
         "ForTokenClassification", "ForQuestionAnswering", "ForMultipleChoice",
         "ForNextSentencePrediction")


def architectures(data: Mapping[str, Any], source: str, prefixes: tuple[str, ...],
                  default: str) -> tuple[str, ...]:
    """``architectures`` (default ``(default,)``): each one of the family's encoder classes."""
    known = tuple(prefix + task for prefix in prefixes for task in TASKS)
    values = tuple(data.get("architectures") or (default,))
    for value in values:
        if value not in known:
            raise ModelFormatError(
                f"{source}: architectures: {value!r} is not supported"
                f"{did_you_mean(str(value), known)}; a {data.get('model_type', 'bert')} "
                f"checkpoint's architecture is {prefixes[0]}Model, {prefixes[0]}ForMaskedLM or "
                f"another of transformers' {prefixes[0]}For... classes (a fine-tune: its encoder "
                f"is loaded). Pick an encoder checkpoint of this family.")
    if data.get("is_decoder") or data.get("add_cross_attention"):
        raise ModelFormatError(
            f"{source}: is_decoder/add_cross_attention is set: this checkpoint attends causally "
            f"(a decoder); headprobe reads bidirectional encoders only.")
    return values


def heads_divide(hidden: int, heads: int, source: str, names: tuple[str, str]) -> None:
    if heads == 0 or hidden % heads:
        raise ModelFormatError(f"{source}: {names[0]} {hidden} is not a multiple of "
                               f"{names[1]} {heads}")


def absolute_positions(data: Mapping[str, Any], source: str) -> None:
    position_type = data.get("position_embedding_type", "absolute")
    if position_type not in ("absolute", None):
        raise ModelFormatError(
            f"{source}: position_embedding_type: {position_type!r} is not supported; only "
            "'absolute' position embeddings are implemented.")
