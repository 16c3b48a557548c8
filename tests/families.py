"""Random-weight checkpoints of every family headprobe loads (SPEC §7b), built with transformers
(PyTorch) and tokenizers trained here with the `tokenizers` library, saved in Hugging Face
layout: what the family tests load and compare against.

Tokenizers (trained on the bundled English sentence set, lower-cased for WordPiece):

- ``wordpiece``: BERT's (BertNormalizer, BertPreTokenizer, ``##`` pieces), ``[CLS] $A [SEP]``;
- ``bpe``: RoBERTa's byte-level BPE (``Ġ``), ``<s> $A </s>``, ``<mask>`` eating the space before
  it (``lstrip``) as roberta-base's does;
- ``unigram``: SentencePiece-style Unigram with ``▁`` (Metaspace), for XLM-RoBERTa (``<s>``,
  ``</s>``, ``<mask>``) and ALBERT (``[CLS]``, ``[SEP]``, ``[MASK]``, ``<unk>``, ``<pad>``).

Sizes differ per axis (hidden 20 = 4 heads x 5, intermediate 13, 3 layers, embeddings 12 wide
where a family has its own embedding width, 3 token types), so a swapped axis cannot pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = dict(hidden_size=20, num_attention_heads=4, intermediate_size=13, num_hidden_layers=3)
POSITIONS = 48


@dataclass(frozen=True)
class Kind:
    """One checkpoint to build: family (model_type), tokenizer, transformers classes."""

    model_type: str
    tokenizer: str
    base: str  # transformers class without a masked-LM head
    masked_lm: str | None
    specials: tuple[str, str, str, str, str]  # cls, sep, mask, unk, pad


KINDS = {
    "bert": Kind("bert", "wordpiece", "BertModel", "BertForMaskedLM",
                 ("[CLS]", "[SEP]", "[MASK]", "[UNK]", "[PAD]")),
    "roberta": Kind("roberta", "bpe", "RobertaModel", "RobertaForMaskedLM",
                    ("<s>", "</s>", "<mask>", "<unk>", "<pad>")),
    "xlm-roberta": Kind("xlm-roberta", "unigram", "XLMRobertaModel", "XLMRobertaForMaskedLM",
                        ("<s>", "</s>", "<mask>", "<unk>", "<pad>")),
    "distilbert": Kind("distilbert", "wordpiece", "DistilBertModel", "DistilBertForMaskedLM",
                       ("[CLS]", "[SEP]", "[MASK]", "[UNK]", "[PAD]")),
    "electra": Kind("electra", "wordpiece", "ElectraForPreTraining", "ElectraForMaskedLM",
                    ("[CLS]", "[SEP]", "[MASK]", "[UNK]", "[PAD]")),
    "albert": Kind("albert", "unigram", "AlbertModel", "AlbertForMaskedLM",
                   ("[CLS]", "[SEP]", "[MASK]", "<unk>", "<pad>")),
    # SPEC §7c: ModernBERT's byte-level BPE with BERT's special tokens, DeBERTa-v3's
    # SentencePiece Unigram.
    "modernbert": Kind("modernbert", "bpe", "ModernBertModel", "ModernBertForMaskedLM",
                       ("[CLS]", "[SEP]", "[MASK]", "[UNK]", "[PAD]")),
    "deberta-v2": Kind("deberta-v2", "unigram", "DebertaV2Model", "DebertaV2ForMaskedLM",
                       ("[CLS]", "[SEP]", "[MASK]", "[UNK]", "[PAD]")),
}
#: ModernBERT's rotary positions need an even head dim: hidden 24 = 4 heads x 6. Its local
#: layers see 3 positions each side (local_attention 6), fewer than most test sentences have.
MODERNBERT_SIZES = dict(hidden_size=24, num_attention_heads=4, intermediate_size=13,
                        num_hidden_layers=3, local_attention=6, global_attn_every_n_layers=2)
#: DeBERTa-v3's settings, with 8 position buckets (log buckets beyond 4 positions, fewer than
#: most test sentences have).
DEBERTA_V3 = dict(relative_attention=True, position_buckets=8, max_relative_positions=-1,
                  pos_att_type=["p2c", "c2p"], share_att_key=True, norm_rel_ebd="layer_norm",
                  position_biased_input=False, type_vocab_size=0, layer_norm_eps=1e-7)


def training_sentences() -> list[str]:
    lines = (ROOT / "headprobe" / "data" / "english.txt").read_text("utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def build_tokenizer(kind: Kind, vocab_size: int = 400):
    """A trained `tokenizers.Tokenizer` of ``kind.tokenizer``'s kind with its post-processor."""
    from tokenizers import (
        AddedToken,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    cls, sep, mask, unk, pad = kind.specials
    # Trained vocabularies start with the special tokens in this order (pad first, as the
    # families' configs expect: pad 0 for BERT-likes and ALBERT, 1 for RoBERTa-likes).
    if kind.model_type in ("roberta", "xlm-roberta"):
        order = [cls, pad, sep, unk]
    else:
        order = [pad, unk, cls, sep]
    special = [*order, AddedToken(mask, lstrip=kind.tokenizer != "wordpiece", special=True)]
    if kind.tokenizer == "wordpiece":
        tokenizer = Tokenizer(models.WordPiece(unk_token=unk))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special)
    elif kind.tokenizer == "bpe":
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    else:
        tokenizer = Tokenizer(models.Unigram())
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁",
                                                           prepend_scheme="always")
        tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=special,
                                          unk_token=unk)
    tokenizer.train_from_iterator(training_sentences(), trainer)
    ids = {token: tokenizer.token_to_id(token) for token in (cls, sep)}
    if kind.model_type == "roberta":
        tokenizer.post_processor = processors.RobertaProcessing(
            (sep, ids[sep]), (cls, ids[cls]), trim_offsets=True, add_prefix_space=False)
    else:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
            special_tokens=[(cls, ids[cls]), (sep, ids[sep])])
    return tokenizer


def save_tokenizer(kind: Kind, tokenizer, folder: Path) -> None:
    """tokenizer.json, tokenizer_config.json and the special tokens, as transformers saves
    them (transformers 4 and 5 alike)."""
    from transformers import PreTrainedTokenizerFast

    cls, sep, mask, unk, pad = kind.specials
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, cls_token=cls, sep_token=sep,
                                   mask_token=mask, unk_token=unk, pad_token=pad,
                                   bos_token=cls, eos_token=sep,
                                   model_max_length=POSITIONS - 4)
    fast.save_pretrained(str(folder))


def config_for(kind: Kind, vocab_size: int, pad_id: int, **overrides):
    import transformers

    sizes = {**SIZES, **overrides}
    if kind.model_type == "distilbert":
        return transformers.DistilBertConfig(
            vocab_size=vocab_size, dim=sizes["hidden_size"], n_layers=sizes["num_hidden_layers"],
            n_heads=sizes["num_attention_heads"], hidden_dim=sizes["intermediate_size"],
            max_position_embeddings=POSITIONS, pad_token_id=pad_id, dropout=0.0,
            attention_dropout=0.0, activation=sizes.get("hidden_act", "gelu"),
            sinusoidal_pos_embds=sizes.get("sinusoidal_pos_embds", False))
    if kind.model_type == "modernbert":
        ids = dict(pad_token_id=pad_id, cls_token_id=pad_id + 2, sep_token_id=pad_id + 3,
                   bos_token_id=pad_id + 2, eos_token_id=pad_id + 3)
        return transformers.ModernBertConfig(**{
            "vocab_size": vocab_size, "max_position_embeddings": POSITIONS, **MODERNBERT_SIZES,
            **ids, **overrides})
    common = dict(vocab_size=vocab_size, max_position_embeddings=POSITIONS, pad_token_id=pad_id,
                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                  **{"type_vocab_size": 3, **{k: v for k, v in sizes.items()
                                              if k != "sinusoidal_pos_embds"}})
    if kind.model_type in ("roberta", "xlm-roberta"):
        common.update(type_vocab_size=1, max_position_embeddings=POSITIONS + pad_id + 1,
                      bos_token_id=0, eos_token_id=2)
        cls = (transformers.XLMRobertaConfig if kind.model_type == "xlm-roberta"
               else transformers.RobertaConfig)
        return cls(**common)
    if kind.model_type == "deberta-v2":
        common.update(DEBERTA_V3)
        common.update(overrides)
        return transformers.DebertaV2Config(**common)
    if kind.model_type == "electra":
        return transformers.ElectraConfig(embedding_size=12, **common)
    if kind.model_type == "albert":
        common.setdefault("num_hidden_groups", 1)
        return transformers.AlbertConfig(embedding_size=12, **common)
    return transformers.BertConfig(**common)


def require_family(family: str) -> None:
    """Skip the test when the installed transformers cannot build ``family`` (ModernBERT needs
    4.48+: the oldest transformers headprobe supports reads configs only)."""
    import pytest
    import transformers

    kind = KINDS[family]
    if not hasattr(transformers, kind.base):
        pytest.skip(f"transformers {transformers.__version__} has no {kind.base} to compare "
                    f"{family} with")


def write_family_checkpoint(folder: Path, family: str, *, masked_lm: bool = True,
                            seed: int = 0, **overrides) -> Path:
    """A random checkpoint of ``family`` (a model_type) in ``folder``: tokenizer files,
    config.json and model.safetensors (``masked_lm``: with the masked-LM head). Skips the test
    when transformers has no such model (`require_family`)."""
    import torch
    import transformers

    require_family(family)
    kind = KINDS[family]
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(kind)
    save_tokenizer(kind, tokenizer, folder)
    pad_id = tokenizer.token_to_id(kind.specials[4])
    config = config_for(kind, tokenizer.get_vocab_size(), pad_id, **overrides)
    torch.manual_seed(seed)
    name = kind.masked_lm if masked_lm else kind.base
    model = getattr(transformers, name)(config).eval()
    with torch.no_grad():  # random LayerNorm and bias values too, so no term is trivially 1 or 0
        for parameter_name, parameter in model.named_parameters():
            if "norm" in parameter_name.lower() or parameter_name.endswith("bias"):
                centre = 1.0 if parameter_name.endswith("weight") else 0.0
                parameter.copy_(torch.randn_like(parameter) * 0.1 + centre)
            elif parameter.dim() == 2:  # larger weights: peaked, not uniform, attention
                parameter.mul_(8.0)
    model.save_pretrained(str(folder), safe_serialization=True)
    return folder
