"""What a model family is to headprobe: how its config.json is read, how its weights are named,
and which special tokens its tokenizer uses. Each family module fills in a `Family`; nothing
here knows any family by name.

A `Naming` is the small table of a family's weight names (PyTorch-style, after its base-model
prefix such as ``roberta.`` is removed): the embeddings, one layer (``{index}`` in ``layer`` is
the layer's, or ALBERT's group's, 0-based index), and the masked-LM head. `headprobe.model.
weights.convert` reads any family's weights through it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from headprobe.errors import ModelFormatError, did_you_mean
from headprobe.model.config import SUPPORTED_ACTIVATIONS, EncoderConfig
from headprobe.model.modelfiles import shown


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
      mlm_marker: a name prefix (or a tuple of them: any) whose presence means the checkpoint
        has the masked-LM head.
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
    mlm_marker: str | tuple[str, ...]
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
class WeightLayout:
    """How a family whose weights are not laid out as BERT's are is read (SPEC §7c).

    Attributes:
      shapes: (the checkpoint's weight names without the base-model prefix, config) -> every
        weight it reads, with the shape config.json gives.
      convert: (a `headprobe.model.statedict.Reader` over those names, config, whether the
        masked-LM head is there) -> the parameter tree of its body (`headprobe.model.encoders`).
    """

    shapes: Callable[[Collection[str], EncoderConfig], dict[str, tuple[int, ...]]]
    convert: Callable[[Any, EncoderConfig, bool], dict[str, Any]]


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
      weights: its own weight layout (None: BERT's, read through ``naming``).
    """

    name: str
    model_types: tuple[str, ...]
    class_prefixes: tuple[str, ...]
    naming: Naming
    read_config: Callable[[Mapping[str, Any], str], EncoderConfig]
    specials: SpecialTokens = BERT_SPECIALS
    wordpiece_vocab: bool = False
    weights: WeightLayout | None = None


# --- reading config.json fields -------------------------------------------------------------


def require(data: Mapping[str, Any], names: tuple[str, ...], source: str,
            family: str) -> None:
    missing = [name for name in names if name not in data]
    if missing:
        raise ModelFormatError(
            f"{source}: missing field(s) {', '.join(missing)}; a {family} config.json needs "
            f"{', '.join(names)}. Re-save the model with transformers' save_pretrained.")


#: The largest size a config.json field may give (a tensor dimension: an int32, as in
#: every framework); the weights' shapes must then agree with it.
MAX_SIZE = 2**31 - 1
#: The most layers (applications of a layer, for ALBERT) an encoder may have: the deepest
#: released BERT-family models have 48; ALBERT's are not bounded by its weights.
MAX_LAYERS = 1024


def integer(data: Mapping[str, Any], name: str, source: str, *, default: int | None = None,
            minimum: int = 0, maximum: int = MAX_SIZE) -> int:
    """A whole number in ``minimum..maximum`` (``default`` when absent or null); a bool (JSON
    ``true``) is no number."""
    value = data.get(name, default)
    if value is None and default is not None:
        value = default
    if type(value) is not int or value < minimum:
        bound = "a non-negative integer" if minimum == 0 else f"an integer >= {minimum}"
        raise ModelFormatError(f"{source}: {name}: expected {bound}, got {shown(value)}")
    if value > maximum:
        raise ModelFormatError(f"{source}: {name}: {shown(value)} is more than {maximum:,}, the "
                               f"most headprobe takes; use the config.json saved with the "
                               f"weights")
    return value


def number(data: Mapping[str, Any], name: str, source: str, default: float) -> float:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ModelFormatError(f"{source}: {name}: expected a small positive number such as "
                               f"1e-12, got {shown(value)}")
    return float(value)


def flag(data: Mapping[str, Any], name: str, source: str, default: bool) -> bool:
    """``true`` or ``false`` (``default`` when absent or null); not a string or a number."""
    value = data.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ModelFormatError(f"{source}: {name}: expected true or false, got {shown(value)}")
    return value


def activation(data: Mapping[str, Any], name: str, source: str, default: str) -> str:
    value = data.get(name, default)
    if not isinstance(value, str) or value not in SUPPORTED_ACTIVATIONS:
        raise ModelFormatError(
            f"{source}: {name}: {shown(value)} is not supported"
            f"{did_you_mean(str(value)[:100], SUPPORTED_ACTIVATIONS)}; supported: "
            f"{', '.join(SUPPORTED_ACTIVATIONS)}")
    return value


#: transformers' encoder classes are ``{Prefix}Model`` and ``{Prefix}For{Task}``; any of them
#: holds the encoder (a fine-tuned classifier too: its head is ignored).
TASKS = ("Model", "ForMaskedLM", "ForPreTraining", "ForSequenceClassification",
         "ForTokenClassification", "ForQuestionAnswering", "ForMultipleChoice",
         "ForNextSentencePrediction")


def architectures(data: Mapping[str, Any], source: str, prefixes: tuple[str, ...],
                  default: str) -> tuple[str, ...]:
    """``architectures`` (default ``(default,)``): each one of the family's encoder classes."""
    known = tuple(prefix + task for prefix in prefixes for task in TASKS)
    listed = data.get("architectures")
    if listed is not None and (not isinstance(listed, list)
                               or not all(isinstance(value, str) for value in listed)):
        raise ModelFormatError(
            f"{source}: architectures: expected a list of transformers class names such as "
            f"[\"{default}\"], got {shown(listed)}")
    values = tuple(listed or (default,))
    for value in values:
        if value not in known:
            raise ModelFormatError(
                f"{source}: architectures: {shown(value)} is not supported"
                f"{did_you_mean(value[:100], known)}; a {data.get('model_type', 'bert')} "
                f"checkpoint's architecture is {prefixes[0]}Model, {prefixes[0]}ForMaskedLM or "
                f"another of transformers' {prefixes[0]}For... classes (a fine-tune: its encoder "
                f"is loaded). Pick an encoder checkpoint of this family.")
    if flag(data, "is_decoder", source, False) or flag(data, "add_cross_attention", source,
                                                        False):
        raise ModelFormatError(
            f"{source}: is_decoder/add_cross_attention is set: this checkpoint attends causally "
            f"(a decoder); headprobe reads bidirectional encoders only.")
    return values


def read_sizes(data: Mapping[str, Any], names: tuple[str, ...], source: str, family: str,
               layers: str) -> dict[str, int]:
    """The required sizes ``names``, each a positive integer; ``layers`` (the field that counts
    layers) at most `MAX_LAYERS`, the others at most `MAX_SIZE`."""
    require(data, names, source, family)
    return {name: integer(data, name, source, minimum=1,
                          maximum=MAX_LAYERS if name == layers else MAX_SIZE)
            for name in names}


def pad_token(data: Mapping[str, Any], source: str, vocab_size: int, default: int) -> int:
    """``pad_token_id``: a row of the word embeddings (padding is looked up there)."""
    value = integer(data, "pad_token_id", source, default=default)
    if value >= vocab_size:
        raise ModelFormatError(f"{source}: pad_token_id: {value} is not a row of the word "
                               f"embeddings (vocab_size {vocab_size}); use the config.json "
                               f"saved with the weights")
    return value


def heads_divide(hidden: int, heads: int, source: str, names: tuple[str, str]) -> None:
    if heads == 0 or hidden % heads:
        raise ModelFormatError(f"{source}: {names[0]} {hidden} is not a multiple of "
                               f"{names[1]} {heads}")


def absolute_positions(data: Mapping[str, Any], source: str) -> None:
    position_type = data.get("position_embedding_type", "absolute")
    if position_type not in ("absolute", None):
        raise ModelFormatError(
            f"{source}: position_embedding_type: {shown(position_type)} is not supported; only "
            "'absolute' position embeddings are implemented.")
