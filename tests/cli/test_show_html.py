"""``headprobe show TEXT --html FILE``: the interactive view (SPEC §16) instead of PNGs, on the
planted tiny checkpoint (2 layers x 3 heads), in this process."""

from __future__ import annotations

import json
import re

import pytest

from headprobe.cli import main

TEXT = "The zebra sat on the mat."


def numbers(path) -> dict:
    (data,) = re.findall(r'<script type="application/json" class="hp-view-data">(.*?)</script>',
                         path.read_text(encoding="utf-8"), re.DOTALL)
    return json.loads(data)


@pytest.fixture
def show(planted_model, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        rc = main(["show", TEXT, "--model", str(planted_model), *args])
        out, err = capsys.readouterr()
        return rc, out, err

    return run


def test_html_alone_writes_the_view_of_every_head_and_no_png(show, tmp_path):
    rc, out, err = show("--html", "view.html")
    assert (rc, out, err) == (0, "view.html\n", "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["view.html"]
    data = numbers(tmp_path / "view.html")
    assert data["heads"] == [f"L{l}H{h}" for l in (1, 2) for h in (1, 2, 3)]
    assert list(data["weights"]) == ["attention", "norm"] and data["level"] == "token"


def test_html_with_head_level_and_weighting_shows_that_head_first(show, tmp_path):
    rc, out, _ = show("--head", "L2H3", "--html", "v.html", "--level", "word",
                      "--weighting", "norm")
    assert (rc, out) == (0, "v.html\n")
    data = numbers(tmp_path / "v.html")
    assert data["heads"] == ["L2H3"]
    assert (data["level"], data["weighting"]) == ("word", "norm")
    assert list(data["weights"]) == ["norm", "attention"]


def test_html_alone_takes_a_pattern(show, tmp_path):
    rc, _, _ = show("--head", "L1H*", "--html", "v.html")
    assert rc == 0 and numbers(tmp_path / "v.html")["heads"] == ["L1H1", "L1H2", "L1H3"]


def test_o_asks_for_the_pngs_too(show, tmp_path):
    rc, out, _ = show("--head", "L1H2", "--html", "v.html", "-o", "d.png")
    assert (rc, out) == (0, "v.html\nd.png\n")
    assert (tmp_path / "d.png").read_bytes().startswith(b"\x89PNG")
    rc, out, _ = show("--all", "--html", "all.html", "-o", "diagrams")
    assert rc == 0 and out.splitlines()[0] == "all.html"
    assert (tmp_path / "diagrams" / "overview.png").is_file()


def test_weighting_norm_draws_the_png_of_norm_weights(show, tmp_path):
    rc, out, _ = show("--head", "L1H1", "--weighting", "norm")
    assert (rc, out) == (0, "Attention_Layer1_Head1.png\n")


def test_o_without_head_or_all_is_a_usage_error(show, tmp_path):
    rc, out, err = show("--html", "v.html", "-o", "d")
    assert rc == 4 and out == "" and err.startswith("ERROR: -o writes PNGs of --head's head")
    assert list(tmp_path.iterdir()) == []


def test_an_html_place_that_cannot_be_written_fails_before_the_model_loads(tmp_path,
                                                                          monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    rc = main(["show", TEXT, "--html", "folder", "--model", str(tmp_path / "no-such-model")])
    err = capsys.readouterr().err
    assert rc == 4 and err.startswith("ERROR: --html folder: is a folder"), err


def test_a_view_too_big_says_to_pick_fewer_heads(show, tmp_path, monkeypatch):
    monkeypatch.setattr("headprobe.report.view.MAX_NUMBERS", 200)
    rc, out, err = show("--html", "v.html")
    assert rc == 4 and out == ""
    assert "pick fewer heads with --head (such as 'L2H9' or 'L2H*')" in err
    assert not (tmp_path / "v.html").exists()
