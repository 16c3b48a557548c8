"""The encoder's shape: what a Hugging Face ``config.json`` says, as one frozen record. Pure.

Every supported family (SPEC §7b: ``bert``, ``roberta``, ``xlm-roberta``, ``distilbert``,
``electra``, ``albert``) is the same post-LayerNorm transformer encoder; `EncoderConfig` holds
its sizes and the few ways the families differ:

- ``embedding_size``: ELECTRA and ALBERT embed into a smaller space and project up
  (``embedding_projection``);
- ``type_vocab_size`` 0: no token-type embeddings (DistilBERT);
- ``position_offset``: RoBERTa's positions start after the padding index, counting only
  non-padding tokens (``max_length`` is then ``max_position_embeddings - pad_token_id - 1``);
- ``layer_groups``: ALBERT's layers share parameters: layer *i* applies group
  ``group_of(i)``;
- ``mlm_act``: the masked-LM head's activation when it is not ``hidden_act`` (RoBERTa's and
  ELECTRA's generator heads use GELU whatever the config says);
- ``tie_word_embeddings``: the masked-LM decoder is the word embedding matrix (False: its own
  weight).

The modern encoders of SPEC §7c compute differently (``body``: which of `headprobe.model.
encoders` runs them) and carry their own options: `ModernBertOptions` (rotary positions,
alternating global and sliding-window layers, GeGLU, no biases, pre-norm) and `DebertaOptions`
(disentangled attention over bucketed relative positions).

How each family's config.json names these is in its module of `headprobe.model.families`;
`headprobe.model.families.read_config` reads a config.json with the module its ``model_type``
picks.
"""

from __future__ import annotations

from dataclasses import dataclass

# Hugging Face's names for the activations; `gelu` is the exact (erf) GELU.
SUPPORTED_ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu", "silu",
                         "swish", "tanh")


@dataclass(frozen=True)
class ModernBertOptions:
    """ModernBERT's choices. ``local_layers``: the 0-based layers with sliding-window attention
    (the others attend globally); a local layer's token attends to keys at most
    ``window_half`` positions away (Hugging Face's ``local_attention // 2``)."""

    local_layers: tuple[int, ...]
    window_half: int
    global_theta: float = 160_000.0
    local_theta: float = 10_000.0
    norm_bias: bool = False
    attention_bias: bool = False
    mlp_bias: bool = False
    decoder_bias: bool = True
    head_bias: bool = False
    head_act: str = "gelu"


@dataclass(frozen=True)
class DebertaOptions:
    """DeBERTa-v2/v3's choices (names as in its config.json). ``span``: how many relative
    distances each side have embeddings (``position_buckets`` when > 0, else
    ``max_relative_positions``)."""

    relative_attention: bool = True
    position_buckets: int = 256
    max_relative_positions: int = 512
    pos_att_type: tuple[str, ...] = ("p2c", "c2p")
    share_att_key: bool = True
    norm_rel_ebd: bool = True
    position_biased_input: bool = False
    conv_kernel_size: int = 0
    conv_groups: int = 1
    conv_act: str = "tanh"
    legacy_head: bool = True

    @property
    def span(self) -> int:
        return self.position_buckets if self.position_buckets > 0 \
            else self.max_relative_positions


@dataclass(frozen=True)
class EncoderConfig:
    """Sizes and choices of one encoder. ``head_dim = hidden_size // num_attention_heads``."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    hidden_act: str
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float
    pad_token_id: int
    architectures: tuple[str, ...] = ("BertModel",)
    model_type: str = "bert"
    embedding_size: int | None = None  # None: the hidden size, no projection
    embedding_projection: bool = False
    position_offset: bool = False
    layer_groups: int | None = None  # None: every layer its own parameters
    mlm_act: str | None = None  # None: hidden_act
    tie_word_embeddings: bool = True
    body: str = "bert"  # which body of headprobe.model.encoders computes it
    modernbert: ModernBertOptions | None = None
    deberta: DebertaOptions | None = None

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def embedding_dim(self) -> int:
        """The width of the embeddings (and of the masked-LM head's output space)."""
        return self.hidden_size if self.embedding_size is None else self.embedding_size

    @property
    def max_length(self) -> int:
        """The most tokens one text may have, special tokens included."""
        if self.position_offset:
            return self.max_position_embeddings - self.pad_token_id - 1
        return self.max_position_embeddings

    @property
    def num_parameter_layers(self) -> int:
        """How many layers have parameters of their own (ALBERT: its groups)."""
        return self.num_hidden_layers if self.layer_groups is None else self.layer_groups

    def group_of(self, layer: int) -> int:
        """The parameter set layer ``layer`` (0-based) applies: itself, or its ALBERT group
        (Hugging Face: ``int(i / (num_hidden_layers / num_hidden_groups))``)."""
        if self.layer_groups is None:
            return layer
        return int(layer / (self.num_hidden_layers / self.layer_groups))

    @property
    def windows(self) -> tuple[int | None, ...]:
        """Per layer (0-based): how many positions each side its heads attend to at most (a
        local, sliding-window layer: SPEC §7c), None for every position of the sentence."""
        o = self.modernbert
        return tuple(o.window_half if o is not None and i in o.local_layers else None
                     for i in range(self.num_hidden_layers))

    @property
    def masked_lm_act(self) -> str:
        return self.hidden_act if self.mlm_act is None else self.mlm_act



#: The name most of the code and the tests know the config by.
BertConfig = EncoderConfig
