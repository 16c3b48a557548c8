"""Claims about heads of ModernBERT's local layers (SPEC §7c): a source none of whose targets
lies within the head's window is left out for that head, with a warning that says so; the
baseline is computed on what the head can reach; global heads of the same claim keep every
source; the numbers are the same from the score cache and through the Python API; a local
head's diagram shades what lies outside its window."""

from __future__ import annotations

import numpy as np
import pytest
from check_runner import check_inprocess, main_in_process, write_project
from families import write_family_checkpoint

import headprobe

pytest.importorskip("torch")
pytest.importorskip("transformers")

HALF = 3  # tests/families.py: local_attention 6; layers 1 and 3 global, layer 2 local
SENTENCES = ["The old man who lived by the sea told the children a long story.",
             "A cat sat on the mat near the door of the house."]
CLAIMS = """
    sentences:
      s:
        - The old man who lived by the sea told the children a long story.
        - A cat sat on the mat near the door of the house.
    hypotheses:
      - id: to-cls
        claim: "L*H1: token -> cls"
        measure: mass
        baseline: offset
        over: s
        expect: ">= 0"
      - id: spread
        claim: "L2H2: token"
        measure: entropy
        over: s
        expect: ">= 0"
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_family_checkpoint(tmp_path_factory.mktemp("local") / "m", "modernbert",
                                   max_position_embeddings=128)


def sources(model) -> tuple[int, int]:
    """(every ``token`` source, those within HALF tokens of [CLS]) over SENTENCES."""
    total = near = 0
    for encoding in model.tokenize(SENTENCES):
        positions = [i for i, word in enumerate(encoding.word_ids) if word is not None]
        total += len(positions)
        near += sum(1 for i in positions if i <= HALF)
    return total, near


def test_local_heads_leave_out_sources_whose_targets_lie_outside_their_window(
        folder, tmp_path, monkeypatch, capfd):
    model = headprobe.load(str(folder), compilation_cache=False)
    assert model.windows == (None, HALF, None)
    total, near = sources(model)
    write_project(tmp_path, {"claims.yaml": CLAIMS})
    runs = [check_inprocess(tmp_path, "claims.yaml", "--model", str(folder), "-q",
                            cache_dir=tmp_path / "cache", monkeypatch=monkeypatch, capfd=capfd)
            for _ in range(2)]  # the second from the score cache
    for run in runs:
        assert run.rc in (0, 1) and "error" not in run.output.lower(), run  # baselines may win
        results = run.results()
        for head in ("L1H1", "L3H1"):
            found = results[f"to-cls[{head}]"]
            assert (found["n"], found["left_out"]) == (total, 0)
            assert not any("local layer" in w for w in found["warnings"])
        local = results["to-cls[L2H1]"]
        assert (local["n"], local["left_out"]) == (near, total - near)
        assert any(f"at most {HALF} tokens on each side" in w and
                   f"{total - near} source(s)" in w for w in local["warnings"])
        # left out for the window, not "because they had no 'cls' target in their sentence"
        assert not any("because they had no" in w for w in local["warnings"])
        assert local["baseline"] is not None
        spread = results["spread[L2H2]"]
        assert spread["n"] == total and 0 < spread["value"] <= 1.0
    first, second = (run.results() for run in runs)
    assert {k: (v["value"], v["n"]) for k, v in first.items()} == \
        {k: (v["value"], v["n"]) for k, v in second.items()}
    measured = model.claim("L2H1: token -> cls").over(SENTENCES).mass()
    assert (measured.n, measured.left_out) == (near, total - near)
    assert measured.value == pytest.approx(local["value"], abs=1e-6)  # report.json: 6 digits


def test_one_sentences_score_is_the_verdicts_for_a_local_head(folder):
    """What failure figures, views and shrinking read (`score_sentence`) is what the verdict
    counts: the local head's window applies to both."""
    from headprobe.evaluation import score_sentence
    from headprobe.heads import parse_head

    model = headprobe.load(str(folder), compilation_cache=False)
    (run,) = model.run(SENTENCES[:1])
    for claim, kind, head in (("L2H1: token -> cls", "mass", "L2H1"),
                              ("L2H2: token", "entropy", "L2H2")):
        measured = getattr(model.claim(claim).over(SENTENCES[:1]), kind)()
        score = score_sentence(measured.spec, parse_head(head), measured.sentences[0], run,
                               model.windows[1])
        assert (score.n, score.left_out) == (measured.n, measured.left_out)
        assert score.value == pytest.approx(measured.value, abs=1e-12)


def test_entropy_of_a_local_head_is_over_what_it_reaches(folder):
    model = headprobe.load(str(folder), compilation_cache=False)
    value = model.claim("L2H2: token").over(SENTENCES[:1]).entropy().value
    (run,) = model.run(SENTENCES[:1])
    rows = run.attentions[1, 1].astype(np.float64)
    expected = []
    for i, word in enumerate(run.word_ids):
        if word is None:
            continue
        reach = len(range(max(0, i - HALF), min(len(rows), i + HALF + 1)))
        p = rows[i][rows[i] > 0]
        expected.append(-(p * np.log(p)).sum() / np.log(reach))
    assert value == pytest.approx(np.mean(expected), abs=1e-9)


def test_a_local_heads_diagram_shows_its_window(folder, tmp_path, monkeypatch, capsys):
    rc, _, err = main_in_process(monkeypatch, capsys, tmp_path, "show", SENTENCES[0],
                                 "--head", "L2H1", "-o", "local.png", "--model", str(folder))
    assert rc == 0, err
    rc, _, err = main_in_process(monkeypatch, capsys, tmp_path, "show", SENTENCES[0],
                                 "--head", "L1H1", "-o", "global.png", "--model", str(folder))
    assert rc == 0, err
    from matplotlib.image import imread

    from headprobe.report.figures import WINDOW_COLOR

    colour = np.array([int(WINDOW_COLOR[i:i + 2], 16) for i in (1, 3, 5)]) / 255

    def window_pixels(name: str) -> int:
        image = imread(tmp_path / name)[..., :3]
        return int((np.abs(image - colour).max(axis=-1) < 0.08).sum())

    assert window_pixels("local.png") > 100
    assert window_pixels("global.png") == 0
