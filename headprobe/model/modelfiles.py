"""Reading the files of a model folder within bounds. No maths.

A model folder comes from anywhere (a download, a colleague's share, a generated test), so each
of its files is read the way hypothesis files are (`headprobe.claims.textfile`):

- only a **regular file** (a symbolic link is followed to one); a named pipe, a device or a
  socket is refused before it is opened for reading, so nothing blocks or streams forever;
- at most a **cap** of bytes: `SMALL_FILE_MB` for ``config.json``, ``tokenizer_config.json``,
  ``special_tokens_map.json`` and the other small JSON files, `LARGE_FILE_MB` for the
  vocabularies (`LARGE_FILES`: ``tokenizer.json``, ``vocab.txt``, ``merges.txt``, ...);
  ``$HEADPROBE_MAX_MODEL_FILE_MB`` replaces both;
- as **UTF-8** (a leading byte-order mark dropped);
- JSON nested at most `MAX_JSON_DEPTH` levels, its numbers finite (no ``NaN``, ``Infinity``
  or ``1e999``).

Weight files are only required to be regular files (`require_regular_file`): their size is the
model's. Every refusal is a `ModelFormatError` that starts with the file's path.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from itertools import accumulate
from pathlib import Path
from typing import Any

from headprobe.claims.textfile import TextFileProblem, read_regular_bytes, special_file_kind
from headprobe.errors import ModelFormatError

MAX_MODEL_FILE_MB_ENV = "HEADPROBE_MAX_MODEL_FILE_MB"
SMALL_FILE_MB = 16
LARGE_FILE_MB = 512
#: Files a real model may hold tens of megabytes of (a multilingual tokenizer.json: ~20-50 MB).
LARGE_FILES = frozenset({"tokenizer.json", "vocab.txt", "vocab.json", "merges.txt",
                         "spiece.model", "sentencepiece.bpe.model", "sentencepiece.model"})
MAX_JSON_DEPTH = 64

# A string runs to its closing quote or, unterminated, to the end of the text: a match never
# fails after scanning ahead, so stripping strings stays linear in the text's length.
_STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")


def cap_megabytes(name: str) -> float:
    """The most MiB read from a model file called ``name``: ``$HEADPROBE_MAX_MODEL_FILE_MB``
    when it is a positive number, else `LARGE_FILE_MB` for `LARGE_FILES` and `SMALL_FILE_MB`
    for the others."""
    raw = os.environ.get(MAX_MODEL_FILE_MB_ENV, "").strip()
    try:
        megabytes = float(raw) if raw else 0.0
    except ValueError:
        megabytes = 0.0
    if megabytes > 0 and math.isfinite(megabytes):
        return min(megabytes, 1 << 20)
    return LARGE_FILE_MB if name in LARGE_FILES else SMALL_FILE_MB


def read_model_bytes(path: str | os.PathLike[str]) -> bytes:
    """The bytes of the regular file ``path``, at most its `cap_megabytes`.

    Raises FileNotFoundError for a missing file, `ModelFormatError` for anything else wrong."""
    path = Path(path)
    megabytes = cap_megabytes(path.name)
    cap = int(megabytes * (1 << 20))
    try:
        data = read_regular_bytes(path, cap)
    except FileNotFoundError:
        raise
    except TextFileProblem as problem:
        raise ModelFormatError(f"{path}: {problem}; a model folder holds regular files (a "
                               f"symbolic link to one is fine)") from None
    except OSError as error:
        raise ModelFormatError(f"{path}: cannot read it: {error.strerror or error}") from None
    if len(data) > cap:
        raise ModelFormatError(
            f"{path}: the file is larger than {megabytes:g} MiB ({cap:,} bytes), the most "
            f"headprobe reads from a model's {path.name}; if the file is genuine, raise the "
            f"limit with {MAX_MODEL_FILE_MB_ENV}=N (MiB)")
    return data


def read_model_text(path: str | os.PathLike[str]) -> str:
    """`read_model_bytes` decoded as UTF-8."""
    return decode_model_text(read_model_bytes(path), path)


def read_model_json(path: str | os.PathLike[str]) -> Any:
    """`read_model_text` parsed as JSON (`parse_model_json`)."""
    return parse_model_json(read_model_text(path), path)


def decode_model_text(data: bytes, path: str | os.PathLike[str]) -> str:
    """``data`` (read from ``path``) as UTF-8, a leading byte-order mark dropped."""
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        raise ModelFormatError(f"{path}: byte 0x{data[error.start]:02x} at offset "
                               f"{error.start:,} is not UTF-8; re-save the file as UTF-8"
                               ) from None


def parse_model_json(text: str, path: str | os.PathLike[str]) -> Any:
    """JSON ``text`` (read from ``path``), nested at most `MAX_JSON_DEPTH` levels, every number
    finite."""
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ModelFormatError(f"{path}: the JSON is nested {depth:,} levels deep; a model file "
                               f"is nested at most {MAX_JSON_DEPTH}. Re-save the model.")
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite)
    except (ValueError, RecursionError) as error:
        raise ModelFormatError(f"{path}: cannot read it as JSON: {error}") from None


def json_depth(text: str) -> int:
    """How deep ``[`` and ``{`` nest in JSON ``text`` (outside strings); linear time."""
    brackets = _NOT_BRACKETS.sub("", _STRINGS.sub("", text))
    return max(accumulate(1 if char in "[{" else -1 for char in brackets), default=0)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def present(path: str | os.PathLike[str]) -> bool:
    """Whether anything (a file, a FIFO, a link, even a broken one) has the name ``path``."""
    return os.path.lexists(path)


def require_regular_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a regular file (a symbolic link followed): False when nothing is
    there; `ModelFormatError` when something else is (a FIFO, a device, a folder, a broken
    link)."""
    path = Path(path)
    if not present(path):
        return False
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise ModelFormatError(f"{path}: cannot read it: {error.strerror or error} (a broken "
                               f"symbolic link?)") from None
    if stat.S_ISREG(mode):
        return True
    what = "a folder" if stat.S_ISDIR(mode) else special_file_kind(mode)
    raise ModelFormatError(f"{path}: {what} is not a regular file; a model folder holds regular "
                           f"files (a symbolic link to one is fine)")


def shown(value: Any, most: int = 60) -> str:
    """``repr(value)`` cut to about ``most`` characters, for error messages about a value read
    from a model file."""
    text = repr(value) if not isinstance(value, (dict, list)) or len(value) < 20 else \
        f"<a {type(value).__name__} of {len(value)} items>"
    return text if len(text) <= most else text[:most - 3] + "..."
