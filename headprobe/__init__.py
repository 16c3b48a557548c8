"""headprobe: pytest for attention heads.

``import headprobe`` is cheap: the model code (JAX) is imported on first use of `load`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headprobe._version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from headprobe.model.api import Model

__all__ = ["__version__", "load"]


def load(spec: str | None = None, **options: Any) -> Model:
    """Load a BERT-family model: a local folder, or a hub id with optional ``@revision``.

    Resolution (SPEC §7): local directory; installed package bundling the hub id; the Hugging Face
    cache; a download through huggingface_hub. ``None`` means ``bert-base-uncased``.
    """
    from headprobe.model.api import load as _load

    return _load(spec, **options)
