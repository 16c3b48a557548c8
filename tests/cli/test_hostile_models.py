"""Hostile model folders through the real commands: a copy of the bundled MiniLM with one file
damaged gives a usage error (exit 4) with one ``ERROR:`` line naming the file and the field,
never a traceback, a hang, gigabytes of memory or a wrong number.

- config.json fields of the wrong type or out of range, or that the weights disagree with
  (layers, hidden size, vocabulary, positions, token types, heads), checked before anything is
  allocated: ``num_hidden_layers: 1000000`` once took 1.3 GB and ended in INTERNALERROR,
  ``architectures: 5`` in a TypeError, ``10**30`` in an OverflowError from SQLite;
- a tokenizer whose ids fall outside the word embeddings (a remapped word, an added token, a
  special token of the post-processor): the embedding lookup would clamp them into a silent
  wrong number; an empty WordPiece vocabulary;
- model files that are FIFOs, devices, huge, deeply nested or not JSON, read as hypothesis files
  are: regular files only, within a size cap (``HEADPROBE_MAX_MODEL_FILE_MB``), nesting bounded.

The weights stay a symbolic link to the bundled file (a link to a regular file is fine); every
other file is a copy.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from check_runner import CheckRun, check_inprocess, run_command, write_project
from derived import minilm_folder

FILES = ("config.json", "tokenizer.json", "vocab.txt", "tokenizer_config.json",
         "special_tokens_map.json")
TEXT = "The cat sat on the mat."
HYPOTHESES = """\
model: {model}
sentences:
  s:
    - The cat sat on the mat.
hypotheses:
  - id: a
    claim: "L1H1: token -> cls"
    over: s
    expect: ">= 0.1"
"""


@pytest.fixture(scope="session")
def minilm() -> Path:
    return minilm_folder()


def damaged_copy(root: Path, source: Path, **files: object) -> Path:
    """``root/model``: MiniLM's files copied (weights linked), then each of ``files`` replaced:
    a dict or list is written as JSON, a str or bytes as it is, None removes the file."""
    folder = root / "model"
    folder.mkdir(parents=True)
    for name in FILES:
        shutil.copy(source / name, folder / name)
    os.symlink(source / "model.safetensors", folder / "model.safetensors")
    for name, content in files.items():
        path = folder / name
        if os.path.lexists(path):
            path.unlink()
        if isinstance(content, (dict, list)):
            path.write_text(json.dumps(content), encoding="utf-8")
        elif isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        elif isinstance(content, bytes):
            path.write_bytes(content)
    return folder


def config(source: Path, **changes: object) -> dict:
    return {**json.loads((source / "config.json").read_text("utf-8")), **changes}


def tokenizer_json(source: Path) -> dict:
    return json.loads((source / "tokenizer.json").read_text("utf-8"))


def check(root: Path, folder: Path, check_cache, monkeypatch, capfd) -> CheckRun:
    write_project(root / "project", {"h.yaml": HYPOTHESES.format(model=folder)})
    return check_inprocess(root / "project", "h.yaml", cache_dir=check_cache,
                           monkeypatch=monkeypatch, capfd=capfd)


def check_command(root: Path, folder: Path, check_cache, **env: str) -> CheckRun:
    """``headprobe check`` as the console command, stopped after 60 s (a hang fails)."""
    write_project(root / "project", {"h.yaml": HYPOTHESES.format(model=folder)})
    command = ["env", *(f"{k}={v}" for k, v in env.items()), *_headprobe(), "check", "h.yaml"]
    return run_command(command, root / "project", check_cache, timeout=60)


def _headprobe() -> list[str]:
    from check_runner import headprobe_command

    return headprobe_command()


def assert_usage_error(run: CheckRun, *words: str) -> None:
    """Exit 4, one ``ERROR:`` line holding every word, no traceback, no result."""
    assert run.rc == 4, run
    assert "Traceback" not in run.output and "INTERNALERROR" not in run.output, run
    errors = [line for line in run.output.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, run
    for word in words:
        assert word in errors[0], (word, run)
    assert " passed" not in run.output and " failed" not in run.output, run


# ---- config.json fields -------------------------------------------------------------------

FIELDS = {
    "a million layers": ({"num_hidden_layers": 1_000_000},
                         ["config.json: num_hidden_layers: 1000000 is more than 1,024"]),
    "10**30 layers": ({"num_hidden_layers": 10**30},
                      ["config.json: num_hidden_layers: 1000000000", "is more than"]),
    "more layers than the weights": (
        {"num_hidden_layers": 7},
        ["model.safetensors: config.json says num_hidden_layers 7, but the weights hold "
         "layers 0..5 (6)"]),
    "fewer layers than the weights": (
        {"num_hidden_layers": 5},
        ["model.safetensors: weights for layer index 5 but config.json says "
         "num_hidden_layers 5"]),
    "layers true": ({"num_hidden_layers": True},
                    ["config.json: num_hidden_layers: expected an integer >= 1, got True"]),
    "architectures 5": ({"architectures": 5},
                        ["config.json: architectures: expected a list", "got 5"]),
    "architectures true": ({"architectures": True},
                           ["config.json: architectures: expected a list", "got True"]),
    "architectures a string": ({"architectures": "BertModel"},
                               ["config.json: architectures: expected a list"]),
    "hidden size": ({"hidden_size": 768},
                    ["'embeddings.word_embeddings.weight' has shape [30522, 384], expected "
                     "[30522, 768] from config.json"]),
    "vocabulary": ({"vocab_size": 40_000},
                   ["'embeddings.word_embeddings.weight' has shape [30522, 384], expected "
                    "[40000, 384]"]),
    "positions": ({"max_position_embeddings": 1_000_000},
                  ["'embeddings.position_embeddings.weight' has shape [512, 384]"]),
    "token types": ({"type_vocab_size": 3},
                    ["'embeddings.token_type_embeddings.weight' has shape [2, 384]"]),
    "no token types": ({"type_vocab_size": 0},
                       ["config.json: type_vocab_size: expected an integer >= 1, got 0"]),
    "intermediate": ({"intermediate_size": 1000},
                     ["'encoder.layer.0.intermediate.dense.weight' has shape [1536, 384]"]),
    "heads not dividing": ({"num_attention_heads": 5},
                           ["config.json: hidden_size 384 is not a multiple of "
                            "num_attention_heads 5"]),
    "no heads": ({"num_attention_heads": 0},
                 ["config.json: num_attention_heads: expected an integer >= 1, got 0"]),
    "pad past the vocabulary": ({"pad_token_id": 30522},
                                ["config.json: pad_token_id: 30522 is not a row"]),
    "tie as text": ({"tie_word_embeddings": "false"},
                    ["config.json: tie_word_embeddings: expected true or false, got 'false'"]),
    "decoder as text": ({"is_decoder": "no"},
                        ["config.json: is_decoder: expected true or false"]),
    "epsilon true": ({"layer_norm_eps": True}, ["config.json: layer_norm_eps: expected"]),
    "model type 5": ({"model_type": 5}, ["config.json: model_type: 5 is not supported"]),
    "activation list": ({"hidden_act": ["gelu"]},
                        ["config.json: hidden_act: ['gelu'] is not supported"]),
}


@pytest.mark.parametrize("case", list(FIELDS))
def test_a_config_field_out_of_type_range_or_agreement_is_a_usage_error(
        tmp_path, minilm, check_cache, monkeypatch, capfd, case):
    changes, words = FIELDS[case]
    folder = damaged_copy(tmp_path, minilm, **{"config.json": config(minilm, **changes)})
    start = time.perf_counter()
    run = check(tmp_path, folder, check_cache, monkeypatch, capfd)
    assert time.perf_counter() - start < 30, run
    assert_usage_error(run, *words)


def test_show_refuses_a_million_layers_before_reading_the_weights(tmp_path, minilm,
                                                                   monkeypatch, capsys):
    from headprobe.cli import main

    folder = damaged_copy(tmp_path, minilm,
                          **{"config.json": config(minilm, num_hidden_layers=1_000_000)})
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["show", TEXT, "--head", "L1H1", "--model", str(folder)]) == 4
    err = capsys.readouterr().err
    assert err.startswith(f"ERROR: {folder / 'config.json'}: num_hidden_layers: "), err
    assert "Traceback" not in err and not list(tmp_path.glob("*.png"))


def test_weights_that_disagree_with_config_allocate_nothing(minilm):
    """The check runs on the safetensors header's shapes: a model that claims a million
    layers is refused without a weight read or a zero array made."""
    import tracemalloc

    from headprobe.errors import ModelFormatError
    from headprobe.model.checkpoint import find_weights, weight_shapes
    from headprobe.model.families import config_from_dict
    from headprobe.model.weights import check_weights

    shapes = weight_shapes(find_weights(minilm))
    settings = config(minilm, num_hidden_layers=1000)
    tracemalloc.start()
    with pytest.raises(ModelFormatError, match="the weights hold layers 0..5"):
        check_weights(shapes, config_from_dict(settings))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1 << 20


RAW = {
    "a list": ("[1, 2]", ["config.json: expected a JSON object, got list"]),
    "NaN": ('{"num_hidden_layers": NaN}', ["config.json: cannot read it as JSON",
                                           "NaN is not a number"]),
    "1e999": ('{"layer_norm_eps": 1e999}', ["config.json: cannot read it as JSON",
                                            "out of range"]),
    "5000 digits": ('{"vocab_size": ' + "9" * 5000 + "}", ["config.json: cannot read it as "
                                                           "JSON"]),
    "200k deep": ("[" * 200_000 + "]" * 200_000, ["config.json: the JSON is nested 200,000 "
                                                  "levels deep", "at most 64"]),
    "not UTF-8": (b'{"model_type": "bert\xff"}', ["config.json: byte 0xff", "not UTF-8"]),
}


@pytest.mark.parametrize("case", list(RAW))
def test_a_config_json_that_is_no_json_object_is_a_usage_error(
        tmp_path, minilm, check_cache, monkeypatch, capfd, case):
    text, words = RAW[case]
    folder = damaged_copy(tmp_path, minilm, **{"config.json": text})
    run = check(tmp_path, folder, check_cache, monkeypatch, capfd)
    assert_usage_error(run, *words)


# ---- tokenizers whose ids are not rows of the word embeddings ------------------------------


def _remapped_word(source: Path) -> dict:
    data = tokenizer_json(source)
    data["model"]["vocab"]["the"] = 40_000  # the model's embeddings have 30,522 rows
    return data


def _added_token(source: Path) -> dict:
    data = tokenizer_json(source)
    # the tokenizers library numbers it after the vocabulary: 30,522, one past the embeddings
    data["added_tokens"].append({"id": 40_000, "content": "[NEW]", "single_word": False,
                                 "lstrip": False, "rstrip": False, "normalized": False,
                                 "special": True})
    return data


def _special_of_post_processor(source: Path) -> dict:
    data = tokenizer_json(source)
    data["post_processor"]["special_tokens"]["[CLS]"]["ids"] = [40_000]
    return data


def _empty_wordpiece(source: Path) -> dict:
    data = tokenizer_json(source)
    data["model"]["vocab"] = {}
    data["added_tokens"] = []
    return data


def _wordpiece_without_unknown(source: Path) -> dict:
    data = tokenizer_json(source)
    del data["model"]["vocab"]["[UNK]"]
    return data


TOKENIZERS = {
    "a word past the embeddings": (_remapped_word, ["tokenizer.json: token 'the' has id 40000, "
                                                    "past the model's word embeddings (30522 "
                                                    "rows"]),
    "an added token past them": (_added_token, ["tokenizer.json: token '[NEW]' has id 30522, "
                                                "past the model's word embeddings"]),
    "a special token past them": (_special_of_post_processor,
                                  ["tokenizer.json: token '[CLS]'", "has id 40000"]),
    "an empty WordPiece vocabulary": (_empty_wordpiece,
                                      ["tokenizer.json: the tokenizer's vocabulary is empty"]),
    "a WordPiece vocabulary without [UNK]": (
        _wordpiece_without_unknown,
        ["tokenizer.json: the WordPiece vocabulary has no unknown token '[UNK]'"]),
}


@pytest.mark.parametrize("case", list(TOKENIZERS))
def test_a_tokenizer_with_ids_outside_the_embeddings_is_a_usage_error(
        tmp_path, minilm, check_cache, monkeypatch, capfd, case):
    damage, words = TOKENIZERS[case]
    folder = damaged_copy(tmp_path, minilm, **{"tokenizer.json": damage(minilm)})
    run = check(tmp_path, folder, check_cache, monkeypatch, capfd)
    assert_usage_error(run, *words)


def test_show_refuses_a_tokenizer_that_maps_the_past_the_embeddings(tmp_path, minilm,
                                                                     monkeypatch, capsys):
    from headprobe.cli import main

    folder = damaged_copy(tmp_path, minilm, **{"tokenizer.json": _remapped_word(minilm)})
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["show", TEXT, "--head", "L1H1", "--model", str(folder)]) == 4
    err = capsys.readouterr().err
    assert err.startswith(f"ERROR: {folder / 'tokenizer.json'}: token 'the' has id 40000"), err
    assert len(err.strip().splitlines()) == 1, err


def test_an_empty_vocab_txt_is_a_usage_error(tmp_path, minilm, check_cache, monkeypatch,
                                             capfd):
    folder = damaged_copy(tmp_path, minilm, **{"tokenizer.json": None, "vocab.txt": ""})
    run = check(tmp_path, folder, check_cache, monkeypatch, capfd)
    assert_usage_error(run, "vocab.txt: the tokenizer's vocabulary is empty")


def test_every_encoding_is_guarded_against_ids_past_the_embeddings(minilm):
    """Besides the check at load, each encoding's ids are checked: a tokenizer built for more
    rows than the model has fails on the first text that reaches past them."""
    from headprobe.errors import ModelFormatError
    from headprobe.model.tokenize import load_tokenizer

    tokenizer = load_tokenizer(minilm)
    assert tokenizer.embedding_rows == 30522
    tokenizer.embedding_rows = 2000  # "the" is 1996, "cat" 4937
    assert tokenizer.encode(["the"])[0].input_ids.tolist() == [101, 1996, 102]
    with pytest.raises(ModelFormatError, match=r"tokenizer\.json: token 'cat' of 'the cat' has "
                                               r"id 4937, past the model's word embeddings"):
        tokenizer.encode(["the cat"])


# ---- model files that are not small regular files ------------------------------------------


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _dev_zero(path: Path) -> None:
    os.symlink("/dev/zero", path)


def _sparse(path: Path) -> None:
    with open(path, "wb") as handle:
        handle.truncate(3 << 30)  # 3 GiB of holes: nothing is written


KINDS = {"fifo": (_fifo, "a named pipe (FIFO) is not a regular file"),
         "dev-zero": (_dev_zero, "a device is not a regular file"),
         "sparse 3 GiB": (_sparse, "larger than "),
         "folder": (Path.mkdir, "cannot read it: Is a directory")}
SPECIAL = [("config.json", "fifo"), ("config.json", "dev-zero"), ("config.json", "sparse 3 GiB"),
           ("config.json", "folder"),
           ("special_tokens_map.json", "fifo"), ("special_tokens_map.json", "dev-zero"),
           ("tokenizer_config.json", "fifo"), ("tokenizer.json", "fifo"),
           ("tokenizer.json", "dev-zero"), ("model.safetensors", "fifo"),
           ("model.safetensors", "dev-zero")]


@pytest.mark.parametrize("name, kind", SPECIAL)
def test_a_model_file_that_is_not_a_small_regular_file_is_refused_at_once(
        tmp_path, minilm, check_cache, name, kind):
    folder = damaged_copy(tmp_path, minilm, **{name: None})
    make, words = KINDS[kind]
    make(folder / name)
    start = time.perf_counter()
    run = check_command(tmp_path, folder, check_cache)
    assert time.perf_counter() - start < 60, run
    assert_usage_error(run, f"{folder / name}: ", words)


def test_vocab_txt_as_a_fifo_is_refused_at_once(tmp_path, minilm, check_cache):
    folder = damaged_copy(tmp_path, minilm, **{"tokenizer.json": None, "vocab.txt": None})
    os.mkfifo(folder / "vocab.txt")
    run = check_command(tmp_path, folder, check_cache)
    assert_usage_error(run, f"{folder / 'vocab.txt'}: a named pipe (FIFO) is not a regular file")


@pytest.mark.parametrize("name, text, words", [
    ("tokenizer.json", "[" * 200_000 + "]" * 200_000, "cannot load the tokenizer"),
    ("tokenizer.json", "{", "cannot load the tokenizer"),
    ("special_tokens_map.json", "{", "cannot read it as JSON"),
    ("tokenizer_config.json", "{" * 200_000, "the JSON is nested 200,000 levels deep"),
], ids=["tokenizer.json 200k deep", "tokenizer.json cut", "special_tokens_map.json cut",
        "tokenizer_config.json 200k deep"])
def test_tokenizer_files_that_are_no_json_are_usage_errors(tmp_path, minilm, check_cache,
                                                          monkeypatch, capfd, name, text,
                                                          words):
    folder = damaged_copy(tmp_path, minilm, **{name: text})
    run = check(tmp_path, folder, check_cache, monkeypatch, capfd)
    assert_usage_error(run, f"{folder / name}: {words}")


def test_the_cap_on_model_files_can_be_raised_and_lowered(tmp_path, minilm, check_cache,
                                                          monkeypatch, capfd):
    folder = damaged_copy(tmp_path, minilm)
    monkeypatch.setenv("HEADPROBE_MAX_MODEL_FILE_MB", "0.1")  # tokenizer.json is 455 KiB
    run = check(tmp_path, folder, check_cache, monkeypatch, capfd)
    assert_usage_error(run, f"{folder / 'tokenizer.json'}: the file is larger than 0.1 MiB",
                       "HEADPROBE_MAX_MODEL_FILE_MB=N")


def test_shards_outside_the_model_folder_are_refused(tmp_path, minilm, check_cache, monkeypatch,
                                                     capfd):
    index = {"metadata": {}, "weight_map": {"embeddings.word_embeddings.weight": "/dev/zero"}}
    folder = damaged_copy(tmp_path, minilm, **{"model.safetensors": None,
                                               "model.safetensors.index.json": index})
    run = check(tmp_path, folder, check_cache, monkeypatch, capfd)
    assert_usage_error(run, "model.safetensors.index.json: weight_map: shard '/dev/zero' is "
                            "not the name of a file beside the index")


def test_the_undamaged_copy_loads_with_the_bundled_numbers(tmp_path, minilm):
    """The checks refuse nothing real: the copy (weights through a link) inspects and loads,
    and tokenizes as the bundled model does."""
    import headprobe
    from headprobe.model.info import inspect_model

    folder = damaged_copy(tmp_path, minilm)
    info = inspect_model(str(folder))
    assert (info.num_layers, info.num_heads, info.max_length) == (6, 12, 512)
    model = headprobe.load(str(folder), compilation_cache=False)
    (encoding,) = model.tokenize([TEXT])
    assert encoding.input_ids.tolist() == [101, 1996, 4937, 2938, 2006, 1996, 13523, 1012, 102]


def test_the_json_depth_check_is_linear_on_escaped_quotes():
    """A string of 200,000 escaped quotes left open (400 KB) was quadratic to strip (an hour
    for a megabyte); depths outside strings are still counted."""
    from headprobe.model.modelfiles import json_depth

    start = time.perf_counter()
    assert json_depth('{"a": "' + '\\"' * 200_000) == 1
    assert time.perf_counter() - start < 2.0
    assert json_depth('{"a": [1, {"b": "[[[\\"]"}]}') == 3
