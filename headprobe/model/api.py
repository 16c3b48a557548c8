"""`load` a model and `Model.run` it over sentences: the engine's public face (SPEC §9).

Batching keeps compilation rare and padding small: texts are sorted by length and cut into
batches of ``batch_size`` counted from the longest, so the one partial batch holds the shortest
texts; each batch is padded to a length bucket (`bucket_length`, multiples of 8 for short texts)
and to a number of rows (`batch_rows`: ``batch_size`` for full batches, the next power of two for
the partial one), so a call over thousands of sentences compiles once per length bucket, plus at
most one shape for its partial batch.

Padding never changes real-token outputs: padded keys are masked out of the softmax. Every batch
is also padded to at least `MIN_BATCH_TOKENS` tokens (rows x length): below that XLA's CPU backend
takes a different matmul path with different float32 rounding, so a sentence run alone would
differ from the same sentence in a batch by ~1e-6. With the floor, it is bit-identical on CPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from headprobe.errors import UsageError, did_you_mean
from headprobe.model.checkpoint import (
    WeightFiles,
    find_weights,
    fingerprint,
    read_state,
    transformer_folder,
)
from headprobe.model.config import EncoderConfig, read_config
from headprobe.model.families import family_of
from headprobe.model.programs import ProgramStore
from headprobe.model.resolve import DEFAULT_SPEC, resolve
from headprobe.model.tokenize import Tokenizer, load_tokenizer
from headprobe.model.weights import convert, flax_to_state_dict
from headprobe.paths import cache_root, compilation_cache_disabled
from headprobe.runs import Encoding, Run

if TYPE_CHECKING:
    from headprobe.pyapi import ClaimQuery

PRECISIONS = ("highest", "high", "default")
LOAD_OPTIONS = ("compilation_cache", "precision")
# compiled executables (`headprobe.model.programs`), in the JAX cache dir
PROGRAMS_FOLDER = "programs"
MIN_BATCH_TOKENS = 128


def bucket_length(length: int, max_length: int) -> int:
    """The padded length for a batch whose longest text has ``length`` tokens.

    Multiples of 8 up to 64, of 16 up to 128, of 32 up to 256, then of 64; never more than
    ``max_length``. (Every padded position costs a full token of compute; each bucket costs one
    compile, which the persistent compilation cache keeps for the next process.)
    """
    step = 8 if length <= 64 else 16 if length <= 128 else 32 if length <= 256 else 64
    return min(-(-length // step) * step, max_length)


def _power_of_two_at_least(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


def batch_rows(count: int, batch_size: int, length: int, multiple: int = 1) -> int:
    """Rows per batch of padded ``length`` in a call over ``count`` texts: the power of two
    >= count, at most ``batch_size``, raised so that rows x length >= `MIN_BATCH_TOKENS`, then
    rounded up to a ``multiple`` (the number of devices a batch is split over)."""
    rows = min(batch_size, _power_of_two_at_least(count))
    rows = max(rows, _power_of_two_at_least(-(-MIN_BATCH_TOKENS // length)))
    return -(-rows // multiple) * multiple


@dataclass(frozen=True)
class Batch:
    """Which texts go together (``indices`` into the input), padded to ``length`` x ``rows``."""

    indices: tuple[int, ...]
    length: int
    rows: int


def plan_batches(lengths: Sequence[int], batch_size: int, max_length: int,
                 multiple: int = 1) -> list[Batch]:
    """Sort by length, cut into batches from the longest end (the partial batch, if any, holds
    the shortest texts and comes first), pick each batch's bucket and rows (a ``multiple``).
    Pure."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    first = len(order) % batch_size
    starts = ([0] if first else []) + list(range(first, len(order), batch_size))
    batches = []
    for start in starts:
        chunk = tuple(order[start:start + (first if start == 0 and first else batch_size)])
        length = bucket_length(max(lengths[i] for i in chunk), max_length)
        batches.append(Batch(chunk, length,
                             batch_rows(len(chunk), batch_size, length, multiple)))
    return batches


def compilation_cache_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """``jax/`` under `headprobe.paths.cache_root` (``$HEADPROBE_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/headprobe``, else ``~/.cache/headprobe``), or under ``root`` if given."""
    return cache_root(root) / "jax"


def enable_compilation_cache(path: str | os.PathLike[str] | None = None) -> Path:
    """Turn on JAX's persistent compilation cache (every compiled program is kept on disk), in
    ``path`` or `compilation_cache_dir`. A second process then reads compiled programs back
    instead of compiling them (tracing is not cached).

    JAX reads the setting when it first compiles, so call this before the first model run.
    """
    import jax

    folder = Path(path) if path is not None else compilation_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return folder


class Model:
    """A loaded BERT: config, parameters on the JAX device, tokenizer. Build with `load`."""

    def __init__(self, *, name: str, path: Path, config: EncoderConfig, params: Any,
                 has_mlm_head: bool, tokenizer: Tokenizer, weights: WeightFiles,
                 precision: str = "highest", programs: ProgramStore | None = None) -> None:
        import jax

        from headprobe.model.compiled import ForwardPrograms  # imports JAX: only once loaded

        self.name = name
        self.path = Path(path)
        self.config = config
        self.has_mlm_head = has_mlm_head
        self.tokenizer = tokenizer
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
        # programs (several devices); `load` turns on JAX's persistent cache for those instead.
        self._programs = ForwardPrograms(config, self._params, precision=precision,
                                         batch_sharding=self._batch_sharding,
                                         store=programs if self.num_devices == 1 else None)

    def __repr__(self) -> str:
        return (f"Model({self.name!r}, layers={self.num_layers}, heads={self.num_heads}, "
                f"mlm_head={self.has_mlm_head}, path={str(self.path)!r})")

    @property
    def loaded_count(self) -> int:
        """Programs this process loaded from the program store instead of compiling them."""
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
    def num_layers(self) -> int:
        return self.config.num_hidden_layers

    @property
    def num_heads(self) -> int:
        return self.config.num_attention_heads

    @property
    def max_length(self) -> int:
        """The most tokens (``[CLS]`` and ``[SEP]`` included) one text may have."""
        return self.config.max_length

    @property
    def fingerprint(self) -> str:
        """``sha256:...`` over the weight files and config.json (computed once per process)."""
        return fingerprint(self.weights, self.path / "config.json")

    def claim(self, text: str, **options: Any) -> ClaimQuery:
        """A claim about this model's heads, to measure in a script, a notebook or a test:
        ``model.claim("L2H9: token -> next").over(sentences).argmax()`` (see
        docs/python-api.md; ``options`` are those of `ProbeModel.claim`)."""
        from headprobe.pyapi import ProbeModel  # claims import the evaluation: only when used

        return ProbeModel(self).claim(text, **options)

    def tokenize(self, texts: Sequence[str]) -> list[Encoding]:
        """Tokens, ids, word ids and offsets per text, without running the model."""
        return self.tokenizer.encode(_as_texts(texts))

    def run(self, texts: Sequence[str], *, hidden_states: bool = True, mlm_logits: bool = True,
            num_layers: int | None = None, batch_size: int = 32) -> list[Run]:
        """Run every text; one `Run` per text, in input order.

        ``mlm_logits`` are given only when the model has the masked-LM head and all layers run.
        ``num_layers`` runs only the first layers (attentions then cover those layers).
        """
        runs: list[Run | None] = [None] * len(texts)
        for index, run in self.iter_runs(texts, hidden_states=hidden_states,
                                         mlm_logits=mlm_logits, num_layers=num_layers,
                                         batch_size=batch_size):
            runs[index] = run
        return runs  # type: ignore[return-value]

    def iter_runs(self, texts: Sequence[str], *, hidden_states: bool = True,
                  mlm_logits: bool = True, num_layers: int | None = None,
                  batch_size: int = 32, copy: bool = True,
                  encodings: Sequence[Encoding] | None = None) -> Iterator[tuple[int, Run]]:
        """Yield ``(index into texts, Run)`` batch by batch (shortest texts first), so that
        thousands of texts can be processed in flat memory.

        ``copy=False`` leaves each run's arrays as views into its batch's output (no copy; a
        run kept alive keeps its whole padded batch alive): for callers that use a run and drop
        it, as `headprobe check` does. ``encodings``: the texts' `tokenize` results, when the
        caller has them already (one per text, same order)."""
        depth = self._check_depth(num_layers)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise UsageError(f"batch_size: expected a positive integer, got {batch_size!r}")
        if encodings is None:
            encodings = self.tokenize(texts)
        else:
            encodings = list(encodings)
            texts = _as_texts(texts)
            if len(encodings) != len(texts) or any(
                    getattr(e, "text", None) != t for e, t in zip(encodings, texts)):
                raise UsageError("encodings: expected model.tokenize(texts), one encoding per "
                                 "text in the same order")
        self._check_lengths(encodings)
        with_logits = bool(mlm_logits) and self.has_mlm_head and depth == self.num_layers
        # One batch of lookahead: the next batch computes on the device (XLA's own threads)
        # while the caller works through the runs of this one.
        in_flight: _InFlight | None = None
        for batch in plan_batches([len(e) for e in encodings], batch_size, self.max_length,
                                  multiple=self.num_devices):
            dispatched = self._dispatch(batch, encodings, depth, bool(hidden_states), with_logits)
            if in_flight is not None:
                yield from self._collect(in_flight, encodings, copy)
            in_flight = dispatched
        if in_flight is not None:
            yield from self._collect(in_flight, encodings, copy)

    def _check_depth(self, num_layers: int | None) -> int:
        if num_layers is None:
            return self.num_layers
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) \
                or not 1 <= num_layers <= self.num_layers:
            raise UsageError(f"num_layers: expected an integer in 1..{self.num_layers} for "
                             f"{self.name}, got {num_layers!r}")
        return num_layers

    def _check_lengths(self, encodings: Sequence[Encoding]) -> None:
        for encoding in encodings:
            if len(encoding) > self.max_length:
                shown = encoding.text if len(encoding.text) <= 80 else encoding.text[:77] + "..."
                raise UsageError(
                    f"text {shown!r} has {len(encoding)} tokens with its special tokens; "
                    f"{self.name} takes at most {self.max_length}. Shorten or split it.")

    def _dispatch(self, batch: Batch, encodings: Sequence[Encoding], depth: int,
                  with_hidden: bool, with_logits: bool) -> _InFlight:
        """Start one batch on the device and return without waiting for it."""
        ids = np.full((batch.rows, batch.length), self.config.pad_token_id, dtype=np.int32)
        mask = np.zeros((batch.rows, batch.length), dtype=np.int32)
        for row, index in enumerate(batch.indices):
            n = len(encodings[index])
            ids[row, :n] = encodings[index].input_ids
            mask[row, :n] = 1
        types = np.zeros_like(ids)
        if self._batch_sharding is not None:
            import jax

            ids, mask, types = jax.device_put((ids, mask, types), self._batch_sharding)
        shape = (batch.rows, batch.length, depth, with_hidden, with_logits)
        inputs = (ids, mask, types)
        program, stored_key = self._programs.get(shape)
        return _InFlight(batch, shape, inputs, program(self._params, *inputs), stored_key)

    def _collect(self, flight: _InFlight, encodings: Sequence[Encoding],
                 copy: bool = True) -> Iterator[tuple[int, Run]]:
        """Wait for a dispatched batch and yield its runs. A program loaded from the store that
        fails when it runs is discarded, compiled afresh, and the batch run again."""
        try:
            attentions, hidden, logits = _to_numpy(flight.out)
        except Exception:
            if flight.stored_key is None:
                raise
            program = self._programs.replace(flight.shape, flight.stored_key)
            attentions, hidden, logits = _to_numpy(program(self._params, *flight.inputs))
        own = np.ascontiguousarray if copy else (lambda view: view)
        for row, index in enumerate(flight.batch.indices):
            e = encodings[index]
            n = len(e)
            yield index, Run(
                **e.encoding_fields(), attentions=own(attentions[row, :, :, :n, :n]),
                hidden_states=None if hidden is None else own(hidden[row, :, :n]),
                mlm_logits=None if logits is None else own(logits[row, :n]))

class _InFlight(NamedTuple):
    """A batch dispatched to the device: its plan, program shape, inputs, (future) outputs, and
    the store key of its program when that was loaded from the program store."""

    batch: Batch
    shape: tuple[int, int, int, bool, bool]
    inputs: tuple[Any, Any, Any]
    out: Any
    stored_key: str | None


def _to_numpy(out: Any) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(attentions [batch, layer, head, query, key], hidden states or None, logits or None) as
    numpy views of the device arrays (no copy on CPU); waits for the computation."""
    return (np.asarray(out.attentions),
            None if out.hidden_states is None else np.asarray(out.hidden_states),
            None if out.logits is None else np.asarray(out.logits))


def _as_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise UsageError(f"texts: expected a list of strings, got one string {texts[:40]!r}; "
                         "wrap it in a list: model.run([text]).")
    bad = [t for t in texts if not isinstance(t, str)]
    if bad:
        raise UsageError(f"texts: expected strings, got {type(bad[0]).__name__} {bad[0]!r}")
    return list(texts)


def load(spec: str | None = None, **options: Any) -> Model:
    """Load a BERT-family model (SPEC §7, §7b: bert, roberta, xlm-roberta, distilbert, electra,
    albert): a local folder, or a hub id with optional ``@revision``.

    Options: ``compilation_cache``: keep compiled programs between processes (see
    `_program_store`): True (default) in `compilation_cache_dir` unless
    ``$HEADPROBE_NO_COMPILATION_CACHE`` is set; a path: in that folder; False: not at all.
    ``precision``: ``"highest"`` (default: float32 matmuls on every backend); ``"default"`` lets
    accelerators use faster, less exact matmuls.
    """
    unknown = [k for k in options if k not in LOAD_OPTIONS]
    if unknown:
        raise UsageError(f"load: unknown option {unknown[0]!r}"
                         f"{did_you_mean(unknown[0], LOAD_OPTIONS)}; "
                         f"valid: {', '.join(LOAD_OPTIONS)}")
    precision = options.get("precision", "highest")
    if precision not in PRECISIONS:
        raise UsageError(f"load: precision: {precision!r} is not one of {', '.join(PRECISIONS)}"
                         f"{did_you_mean(str(precision), PRECISIONS)}")
    resolved = resolve(spec)
    folder = transformer_folder(resolved.folder)
    config = read_config(folder)
    weights = find_weights(folder)
    state = read_state(weights)
    if weights.format == "flax":
        state = flax_to_state_dict(state)
    params, has_mlm_head = convert(state, config, source=str(weights.files[0]))
    del state
    tokenizer = load_tokenizer(folder, family_of(config.model_type))
    return Model(name=DEFAULT_SPEC if spec is None else str(spec), path=folder, config=config,
                 params=params, has_mlm_head=has_mlm_head, tokenizer=tokenizer, weights=weights,
                 precision=precision,
                 programs=_program_store(options.get("compilation_cache", True)))


def _program_store(option: Any) -> ProgramStore | None:
    """Where compiled programs are kept between processes (`load`'s ``compilation_cache``).

    On one device: headprobe's program store (``FOLDER/programs``), which skips tracing and
    compiling; JAX's persistent cache is then left off, because an executable JAX read back from
    its cache cannot be serialized again. On several devices (sharded programs, which the store
    does not keep): JAX's persistent cache in ``FOLDER``, which skips XLA's compile only.
    """
    if option is False or option is None or (option is True and compilation_cache_disabled()):
        return None
    import jax

    folder = compilation_cache_dir() if option is True else Path(option)
    if len(jax.local_devices()) > 1:
        enable_compilation_cache(folder)
        return None
    return ProgramStore(folder / PROGRAMS_FOLDER)
