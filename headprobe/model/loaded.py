"""`load` a model and `Model.run` it over sentences: the model's public face (SPEC §9).

Sentences are packed (`headprobe.model.packing`): several to a row of one length for the whole
call (32 to 512 tokens: the smallest that holds the longest sentence and packs tightly), each
attending only to itself, and the rows cut into batches of one size. So a call compiles **one
program** per (layers run, outputs), whatever the mix of lengths, and computes almost no
padding; a sentence packed with others gets what it gets alone (masked keys have probability
exactly 0), to float32 rounding.

Every batch has at least `MIN_BATCH_TOKENS` tokens (rows x row length): below that XLA's CPU
backend takes a different matmul path with different float32 rounding, so a sentence run alone
would differ from the same sentence in a batch by ~1e-6. With the floor it does not."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from headprobe.errors import UsageError, did_you_mean
from headprobe.model import packing
from headprobe.model.base import WEIGHTINGS, EncoderModel, as_texts
from headprobe.model.checkpoint import (
    WeightFiles,
    find_weights,
    fingerprint,
    read_state,
    transformer_folder,
)
from headprobe.model.config import EncoderConfig
from headprobe.model.export.locate import locate
from headprobe.model.export.runner import load_export
from headprobe.model.families import family_of, read_config
from headprobe.model.info import ModelInfo
from headprobe.model.programs import ProgramStore
from headprobe.model.resolve import DEFAULT_SPEC, resolve
from headprobe.model.tokenize import Tokenizer, load_tokenizer
from headprobe.model.weights import convert, flax_to_state_dict
from headprobe.paths import cache_root, compilation_cache_disabled
from headprobe.runs import Encoding, Run

PRECISIONS = ("highest", "high", "default")
LOAD_OPTIONS = ("compilation_cache", "precision", "tokenizer")
__all__ = ["WEIGHTINGS", "Model", "as_texts", "load", "load_folder"]
# traced programs (`headprobe.model.programs`), in the JAX cache dir
PROGRAMS_FOLDER = "programs"
MIN_BATCH_TOKENS = 128


def batch_rows(rows: int, batch_size: int, row_length: int, heads_out: int,
               multiple: int = 1, band: int | None = None) -> int:
    """Rows per batch for a call of ``rows`` packed rows: at most ``batch_size`` (and what
    `packing.rows_per_batch` allows), at least `MIN_BATCH_TOKENS` tokens, a ``multiple`` of
    the devices a batch is split over."""
    per_batch = packing.rows_per_batch(rows, row_length, heads_out, most=batch_size,
                                       band=band)
    per_batch = max(per_batch, -(-MIN_BATCH_TOKENS // row_length))
    return -(-per_batch // multiple) * multiple


def plan_batches(lengths: Sequence[int], batch_size: int, max_length: int, heads_out: int,
                 multiple: int = 1) -> list[packing.PackedBatch]:
    """The call's packed batches (`packing.choose_rows`, `batch_rows` with the call's band of
    kept keys, `packing.cut`). Pure."""
    if not lengths:
        return []
    row_length, rows = packing.choose_rows(lengths, max_length)
    band = packing.band_width(lengths, row_length)
    per_batch = batch_rows(len(rows), batch_size, row_length, heads_out, multiple, band)
    return packing.cut(rows, lengths, row_length, per_batch)


def compilation_cache_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """``jax/`` under `headprobe.paths.cache_root` (``$HEADPROBE_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/headprobe``, else ``~/.cache/headprobe``), or under ``root`` if given."""
    return cache_root(root) / "jax"


def enable_compilation_cache(path: str | os.PathLike[str] | None = None) -> Path:
    """Turn on JAX's persistent compilation cache (every compiled program is kept on disk), in
    ``path`` or `compilation_cache_dir`. A second process then reads compiled programs back
    instead of compiling them (tracing is not cached).

    JAX reads the setting when it first compiles, so call this before the first model run.
    JAX's cache files are machine code that JAX runs: use a folder that only you can write and
    that is never restored from elsewhere (a CI cache). headprobe itself never calls this.
    """
    import jax

    folder = Path(path) if path is not None else compilation_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return folder


class Model(EncoderModel):
    """A loaded checkpoint: config, parameters on the JAX device, tokenizer. Build with
    `load`."""

    def __init__(self, *, name: str, path: Path, config: EncoderConfig, params: Any,
                 has_mlm_head: bool, tokenizer: Tokenizer, weights: WeightFiles,
                 precision: str = "highest", programs: ProgramStore | None = None) -> None:
        import jax

        from headprobe.model.compiled import ForwardPrograms  # imports JAX: only once loaded

        super().__init__(name=name, path=path, config=config, tokenizer=tokenizer,
                         has_mlm_head=has_mlm_head)
        self.weights = weights
        self.precision = precision
        devices = jax.local_devices()
        self.num_devices = len(devices)
        self._batch_sharding = None
        if self.num_devices > 1:  # data parallel: split each batch's rows over the devices
            from jax.sharding import Mesh, NamedSharding, PartitionSpec

            mesh = Mesh(np.array(devices), ("batch",))
            self._batch_sharding = NamedSharding(mesh, PartitionSpec("batch"))
            self._params = jax.device_put(params, NamedSharding(mesh, PartitionSpec()))
        else:
            self._params = jax.device_put(params)
        # One program per (rows, length, depth, outputs). The store does not keep sharded
        # programs (several devices).
        self._programs = ForwardPrograms(config, self._params, precision=precision,
                                         batch_sharding=self._batch_sharding,
                                         store=programs if self.num_devices == 1 else None)

    @property
    def loaded_count(self) -> int:
        """Programs this process loaded from the program store instead of tracing them."""
        return self._programs.loaded

    @property
    def compile_count(self) -> int:
        """Programs traced and compiled by this process."""
        return self._programs.compile_count

    @property
    def program_seconds(self) -> float:
        """Wall time this process spent getting programs (compiling or loading)."""
        return self._programs.seconds

    @property
    def fingerprint(self) -> str:
        """``sha256:...`` over the weight files and config.json (computed once per process)."""
        return fingerprint(self.weights, self.path / "config.json")

    def iter_runs(self, texts: Sequence[str], *, hidden_states: bool = True,
                  mlm_logits: bool = True, num_layers: int | None = None,
                  batch_size: int = 32, copy: bool = True,
                  encodings: Sequence[Encoding] | None = None,
                  heads: Sequence[tuple[int, int]] | None = None, weighting: str = "attention",
                  output_norms: bool = False) -> Iterator[tuple[int, Run]]:
        """Yield ``(index into texts, Run)`` batch by batch, so that thousands of texts can be
        processed in flat memory.

        ``copy=False`` leaves each run's arrays as views into its batch's output (no copy; a
        run kept alive keeps its whole batch alive): for callers that use a run and drop it,
        as `headprobe check` does. ``encodings``: the texts' `tokenize` results, when the
        caller has them already (one per text, same order). ``heads``: 0-based ``(layer,
        head)`` pairs: only their attentions are computed into the runs (the others are NaN),
        for callers that need a few heads of a large model. ``weighting`` and ``output_norms``:
        as for `run`."""
        depth = self._check_run_options(num_layers, weighting, batch_size)
        encodings = self._encodings(texts, encodings)
        selected = self._check_heads(heads, depth)
        with_logits = bool(mlm_logits) and self.has_mlm_head and depth == self.num_layers
        lengths = [len(e) for e in encodings]
        heads_out = len(selected) if selected is not None else depth * self.num_heads
        batches = plan_batches(lengths, batch_size, self.max_length, heads_out,
                               multiple=self.num_devices)
        band = packing.band_width(lengths, batches[0].row_length) if batches else 1
        outputs = _Outputs(depth, bool(hidden_states), with_logits, selected, band, weighting,
                           bool(output_norms))
        # One batch of lookahead: the next batch computes on the device (XLA's own threads)
        # while the caller works through the runs of this one.
        in_flight: _InFlight | None = None
        for batch in batches:
            self.padded_tokens += batch.rows * batch.row_length
            dispatched = self._dispatch(batch, encodings, outputs)
            if in_flight is not None:
                yield from self._collect(in_flight, encodings, copy)
            in_flight = dispatched
        if in_flight is not None:
            yield from self._collect(in_flight, encodings, copy)

    def context_means(self, texts: Sequence[str], *,
                      encodings: Sequence[Encoding] | None = None) -> np.ndarray:
        """float32 ``[layer, head, head dim]``: every head's context (its weighted values,
        before the output projection) averaged over every token of ``texts``, ``[CLS]`` and
        ``[SEP]`` included: what ``ablation="mean"`` replaces a removed head's by."""
        encodings = self._encodings(texts, encodings)
        from headprobe.model import ablation as removal

        return removal.context_means(self._programs, self._params, self.config, encodings)

    def iter_effects(self, texts: Sequence[str], heads: Sequence[tuple[int, int]], *,
                     ablation: str = "mean", effect: str = "hidden", together: bool = False,
                     means: np.ndarray | None = None,
                     encodings: Sequence[Encoding] | None = None
                     ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(index into texts, float32 [variant, token])`` batch by batch.

        ``heads``: 0-based ``(layer, head)`` pairs; one variant per head (in the order given),
        each removed alone, or with ``together`` one variant removing them all.
        ``ablation``: ``"mean"`` (each removed head's output replaced by its mean over every
        token of ``texts``, or by ``means`` from `context_means` when given) or ``"zero"``.
        ``effect``: ``"hidden"`` (``||h' - h|| / ||h||`` of the last hidden state),
        ``"embedding"`` (``1 - cos`` of the mean-pooled sentence embedding, the same at every
        token) or ``"kl"`` (``KL(p || p')`` of the masked-LM distribution; needs the MLM
        head)."""
        from headprobe.model import ablation as removal

        removal.check_choice("ablation", ablation, removal.ABLATIONS)
        removal.check_choice("effect", effect, removal.EFFECTS)
        if effect == "kl" and not self.has_mlm_head:
            raise UsageError(f"effect: kl needs a masked-LM head, and {self.name} has none; "
                             "use effect: hidden or embedding")
        if not isinstance(together, bool):
            raise UsageError(f"together: expected True or False, got {together!r}")
        self._check_heads(heads, self.num_layers)  # range checks; none is an error
        selected = tuple((int(layer), int(head)) for layer, head in heads)
        if len(set(selected)) != len(selected):
            raise UsageError(f"heads: each head once, got {list(heads)!r}")
        encodings = self._encodings(texts, encodings)
        c = self.config
        variants = removal.variants_of(selected, together)
        ahead = removal.compile_ahead(self._programs, c, encodings, variants, effect)
        if ablation == "zero":
            values = np.zeros((c.num_hidden_layers, c.num_attention_heads, c.head_dim),
                              np.float32)
        elif means is not None:
            values = np.asarray(means, dtype=np.float32)
            if values.shape != (c.num_hidden_layers, c.num_attention_heads, c.head_dim):
                raise UsageError(f"means: expected model.context_means(texts) of shape "
                                 f"{(c.num_hidden_layers, c.num_attention_heads, c.head_dim)}, "
                                 f"got {values.shape}")
        else:
            values = removal.context_means(self._programs, self._params, c, encodings)
        yield from removal.iter_effects(self._programs, self._params, c, encodings, variants,
                                        effect=effect, values=values, ahead=ahead)

    def _dispatch(self, batch: packing.PackedBatch, encodings: Sequence[Encoding],
                  outputs: _Outputs) -> _InFlight:
        """Start one batch on the device and return without waiting for it."""
        c = self.config
        inputs = packing.batch_arrays(batch, _ids_by_index(batch, encodings), c.pad_token_id,
                                      c.position_offset)
        if self._batch_sharding is not None:
            import jax

            inputs = jax.device_put(inputs, self._batch_sharding)
        shape = (batch.rows, batch.row_length, outputs.depth, outputs.hidden, outputs.logits,
                 outputs.heads, outputs.band, outputs.weighting, outputs.output_norms)
        program, stored_key = self._programs.get(shape)
        return _InFlight(batch, shape, inputs, program(self._params, *inputs), stored_key,
                         outputs)

    def _collect(self, flight: _InFlight, encodings: Sequence[Encoding],
                 copy: bool = True) -> Iterator[tuple[int, Run]]:
        """Wait for a dispatched batch and yield its runs. A program loaded from the store that
        fails when it runs is discarded, compiled afresh, and the batch run again."""
        try:
            attentions, hidden, logits, norms = _to_numpy(flight.out)
        except Exception:
            if flight.stored_key is None:
                raise
            program = self._programs.replace(flight.shape, flight.stored_key)
            attentions, hidden, logits, norms = _to_numpy(program(self._params, *flight.inputs))
        own = np.ascontiguousarray if copy else (lambda view: view)
        selected = flight.outputs.heads
        for placed in flight.batch.placed:
            e = encodings[placed.index]
            span = slice(placed.start, placed.start + placed.length)
            keys = slice(0, placed.length)  # the band starts at the sentence's first key
            if selected is None:  # [batch, layer, head, q, band]
                grid = own(attentions[placed.row, :, :, span, keys])
            else:  # [batch, selected head, q, band] -> NaN where not selected
                grid = np.full((flight.outputs.depth, self.num_heads, placed.length,
                                placed.length), np.nan, dtype=np.float32)
                layers, heads = zip(*selected)
                grid[list(layers), list(heads)] = attentions[placed.row, :, span, keys]
            yield placed.index, Run(
                **e.encoding_fields(), attentions=grid,
                hidden_states=None if hidden is None else own(hidden[placed.row, :, span]),
                mlm_logits=None if logits is None else own(logits[placed.row, span]),
                output_norms=None if norms is None else own(norms[placed.row, :, :, span]))


def _ids_by_index(batch: packing.PackedBatch,
                  encodings: Sequence[Encoding]) -> dict[int, np.ndarray]:
    return {p.index: encodings[p.index].input_ids for p in batch.placed}


class _Outputs(NamedTuple):
    """What a call asks of each batch: layers run, hidden states, logits, selected heads, and
    the band of keys kept per query (`packing.band_width`)."""

    depth: int
    hidden: bool
    logits: bool
    heads: tuple[tuple[int, int], ...] | None
    band: int
    weighting: str
    output_norms: bool


class _InFlight(NamedTuple):
    """A batch dispatched to the device: its plan, program shape, inputs, (future) outputs, the
    store key of its program when that was loaded from the program store, and what was asked."""

    batch: packing.PackedBatch
    shape: tuple
    inputs: tuple[Any, Any, Any, Any]
    out: Any
    stored_key: str | None
    outputs: _Outputs


def _to_numpy(out: Any) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None,
                                 np.ndarray | None]:
    """(attentions [batch, layer, head, query, key], hidden states, logits, output norms
    [batch, layer, head, token]; None for what was not asked) as numpy views of the device
    arrays (no copy on CPU); waits for the computation."""
    return (np.asarray(out.attentions),
            None if out.hidden_states is None else np.asarray(out.hidden_states),
            None if out.logits is None else np.asarray(out.logits),
            None if out.output_norms is None else np.asarray(out.output_norms))


def load(spec: str | None = None, **options: Any) -> EncoderModel:
    """Load a BERT-family model (SPEC §7, §7b: bert, roberta, xlm-roberta, distilbert, electra,
    albert; §7c: modernbert, deberta-v2): a local folder, or a hub id with optional
    ``@revision``; or an ONNX export of one (SPEC §15: a ``.onnx`` file, or a folder in the
    Optimum or sentence-transformers layout).

    Options: ``compilation_cache``: keep compiled programs between processes (see
    `_program_store`): True (default) in `compilation_cache_dir` unless
    ``$HEADPROBE_NO_COMPILATION_CACHE`` is set; a path: in that folder; False: not at all.
    ``precision``: ``"highest"`` (default: float32 matmuls on every backend); ``"default"`` lets
    accelerators use faster, less exact matmuls. ``tokenizer``: for an export, the folder or
    model spec its config.json and tokenizer come from (default: beside the file, or its parent
    folder).
    """
    _check_options(options)  # before the model is looked for
    name = DEFAULT_SPEC if spec is None else str(spec)
    location = resolve(spec).folder
    export = locate(location, options.get("tokenizer"))
    if export is not None:
        return load_export(export, name=name)
    return load_folder(transformer_folder(location), name=name, **options)


def load_info(info: ModelInfo, *, name: str, **options: Any) -> EncoderModel:
    """`load` what `headprobe.model.info.inspect_model` found (a spec resolved once)."""
    if info.export is not None:
        return load_export(info.export, name=name)
    return load_folder(info.folder, name=name, **options)


def _check_options(options: dict[str, Any]) -> str:
    """`load`'s options can be used; returns the precision."""
    unknown = [k for k in options if k not in LOAD_OPTIONS]
    if unknown:
        raise UsageError(f"load: unknown option {unknown[0]!r}"
                         f"{did_you_mean(unknown[0], LOAD_OPTIONS)}; "
                         f"valid: {', '.join(LOAD_OPTIONS)}")
    precision = options.get("precision", "highest")
    if precision not in PRECISIONS:
        raise UsageError(f"load: precision: {precision!r} is not one of {', '.join(PRECISIONS)}"
                         f"{did_you_mean(str(precision), PRECISIONS)}")
    return str(precision)


def load_folder(folder: Path, *, name: str, **options: Any) -> Model:
    """`load` from the folder that holds config.json (a spec resolved already), named
    ``name``: what `headprobe.engine.models.ModelRegistry` calls, so that a spec is resolved
    once per process."""
    precision = _check_options(options)
    config = read_config(folder)
    weights = find_weights(folder)
    state = read_state(weights)
    if weights.format == "flax":
        state = flax_to_state_dict(state)
    params, has_mlm_head = convert(state, config, source=str(weights.files[0]))
    del state
    tokenizer = load_tokenizer(folder, family_of(config.model_type))
    return Model(name=name, path=folder, config=config,
                 params=params, has_mlm_head=has_mlm_head, tokenizer=tokenizer, weights=weights,
                 precision=precision,
                 programs=_program_store(options.get("compilation_cache", True)))


def _program_store(option: Any) -> ProgramStore | None:
    """Where compiled programs are kept between processes (`load`'s ``compilation_cache``).

    On one device: headprobe's program store (``FOLDER/programs``), which keeps traced programs
    (StableHLO, never code) and skips tracing, and executables sealed with the user's program
    key (kept outside the cache folder), which skip XLA's compile too. On several devices
    (sharded programs, which the store does not keep): none. JAX's persistent compilation cache
    is never turned on here: its entries are machine code under no seal, which a forged cache
    file would run (docs/cache.md).
    """
    if option is False or option is None or (option is True and compilation_cache_disabled()):
        return None
    import jax

    folder = compilation_cache_dir() if option is True else Path(option)
    if len(jax.local_devices()) > 1:
        return None
    return ProgramStore(folder / PROGRAMS_FOLDER)
