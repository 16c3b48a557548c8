"""Shared test set-up. Warnings are errors in headprobe's own tests (not in users'
`headprobe check`)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_configure(config):
    config.addinivalue_line("filterwarnings", "error")
    # Third-party noise that is not ours to fix.
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning")
    config.addinivalue_line("filterwarnings", "ignore::PendingDeprecationWarning")
    config.addinivalue_line("filterwarnings", "ignore::FutureWarning")


# ---- headprobe check / Python API tests (tests/cli): a planted tiny checkpoint, made once ----
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def planted_model(tmp_path_factory):
    """Folder of the tiny checkpoint of `tests/fixtures_models.py` (L1H1 uniform, or all on
    "zebra" when the sentence has it); 16 positions, 2 layers, 3 heads."""
    from fixtures_models import write_planted_checkpoint

    return write_planted_checkpoint(tmp_path_factory.mktemp("planted-model"))


@pytest.fixture(scope="session", autouse=True)
def program_key_file(tmp_path_factory):
    """The key that seals compiled programs (docs/cache.md) in a temporary folder instead of
    the user's ~/.config; the commands tests run inherit it."""
    name = "HEADPROBE_PROGRAM_KEY_FILE"
    if os.environ.get(name):
        yield os.environ[name]
        return
    os.environ[name] = str(tmp_path_factory.mktemp("program-key") / "program-key")
    yield os.environ[name]
    os.environ.pop(name, None)


@pytest.fixture(scope="session")
def check_cache(tmp_path_factory):
    """A headprobe cache dir shared by the check tests (JAX's compiled programs are reused)."""
    return tmp_path_factory.mktemp("headprobe-cache")


@pytest.fixture(scope="session")
def onnx_exports(tmp_path_factory):
    """The exports of tests/exports.py, made once: ``minilm`` (the bundled MiniLM in the
    sentence-transformers layout, float32), ``minilm-int8`` (its dynamic int8 quantisation)
    and ``minilm-fp16`` (its float16 copy), each a file in that folder's ``onnx/``; random
    ``roberta`` and ``albert`` masked-LM checkpoints exported the same way and ``bert-dynamo``
    (torch.onnx's dynamo exporter), each a folder; ``fused`` (MiniLM with onnxruntime's attention
    fusion) a file; ``checkpoints``: the families' checkpoint folders."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("torch")
    from derived import minilm_folder
    from exports import export_folder, float16_copy, fuse_attention, quantize_dynamic
    from families import write_family_checkpoint

    root = tmp_path_factory.mktemp("onnx-exports")
    minilm = export_folder(minilm_folder(), root / "minilm")
    graph = minilm / "onnx" / "model.onnx"
    found = {"minilm": minilm,
             "minilm-int8": quantize_dynamic(graph, minilm / "onnx" / "model_qint8_avx512.onnx"),
             "minilm-fp16": float16_copy(graph, minilm / "onnx" / "model_fp16.onnx"),
             "fused": fuse_attention(graph, root / "fused.onnx", 12, 384)}
    checkpoints = {}
    for family in ("roberta", "albert", "bert"):
        checkpoints[family] = write_family_checkpoint(root / f"{family}-checkpoint", family,
                                                      masked_lm=True, seed=5)
    found["roberta"] = export_folder(checkpoints["roberta"], root / "roberta", masked_lm=True)
    found["albert"] = export_folder(checkpoints["albert"], root / "albert", masked_lm=True)
    found["bert-dynamo"] = export_folder(checkpoints["bert"], root / "bert-dynamo",
                                         masked_lm=True, dynamo=True)
    found["checkpoints"] = checkpoints
    return found
