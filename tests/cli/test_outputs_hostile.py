"""What `profile`, `diff` and `discover` write, and the profile files `diff` reads, through the
real command: every output that cannot be written (a named pipe, a device, a file where a
folder should be, a full disk) and every hostile profile file (numbers of hundreds of digits,
nesting 200,000 deep, lone surrogates, a model too large to draw) is one ``ERROR:`` line and
exit 4, never a traceback, checked before anything is written; `discover -o` never overwrites a
sentence file it did not write, and a run killed between its two renames leaves a hypothesis
file that points at sentences that exist.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import sys
from pathlib import Path

import pytest
from check_runner import CheckRun, headprobe_command, run_command

from headprobe import atomic
from headprobe.cli import main
from headprobe.evaluation.profile_stats import STATISTICS
from headprobe.sentence_sets import bundled_path

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def _profile(layers: int = 2, heads: int = 3, value: object = 0.5, model: str = "m") -> dict:
    return {"headprobe_version": "0", "model": model, "model_fingerprint": "sha256:0",
            "level": "token", "sentences": {"count": 3, "sha256": "ab" * 32},
            "statistics": list(STATISTICS),
            "heads": {f"L{layer}H{head}": {s: value for s in STATISTICS}
                      for layer in range(1, layers + 1) for head in range(1, heads + 1)}}


def _write(path: Path, profile: dict) -> Path:
    path.write_text(json.dumps(profile), encoding="utf-8")
    return path


@pytest.fixture
def profiles(tmp_path) -> tuple[Path, Path]:
    return (_write(tmp_path / "a.json", _profile()),
            _write(tmp_path / "b.json", _profile(value=0.7)))


def headprobe(tmp_path: Path, *args: str) -> CheckRun:
    """``headprobe ARGS`` run as the console command in ``tmp_path``."""
    return run_command([*headprobe_command(), *args], tmp_path, tmp_path / "cache")


def assert_usage_error(run: CheckRun, *words: str) -> None:
    """Exit 4 with one ``ERROR:`` line that holds ``words``, and no traceback."""
    assert run.rc == 4, run
    assert "Traceback" not in run.output, run
    errors = [line for line in run.stderr.splitlines() if line.startswith("ERROR: ")]
    assert len(errors) == 1 and run.stderr.strip() == errors[0], run
    for word in words:
        assert word in errors[0], (word, run)


def character_device(tmp_path: Path) -> Path:
    """A character device no test can harm: a null device made in ``tmp_path`` (root), or
    /dev/null for a user who cannot replace it."""
    if os.geteuid() != 0:
        return Path("/dev/null")
    node = tmp_path / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except OSError:
        pytest.skip("root without CAP_MKNOD: no device that a regression could not replace")
    return node


# --- diff -o DIR, diff --json FILE, profile -o FILE: places that cannot be written ------------


def test_diff_into_a_fifo_or_a_device_is_a_usage_error(tmp_path, profiles):
    fifo, device = tmp_path / "fifo", character_device(tmp_path)
    os.mkfifo(fifo)
    for option, target, words in [("-o", fifo, ["named pipe (FIFO)", "not a folder"]),
                                  ("-o", device, ["a device", "not a folder"]),
                                  ("--json", fifo, ["named pipe (FIFO)", "not a regular file"]),
                                  ("--json", device, ["a device", "not a regular file"])]:
        run = headprobe(tmp_path, "diff", *map(str, profiles), option, str(target))
        assert_usage_error(run, f"{option} {target}", *words)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and stat.S_ISCHR(os.stat(device).st_mode)


def test_diff_checks_every_output_before_writing_any(tmp_path, profiles):
    (tmp_path / "file").write_text("", encoding="utf-8")
    run = headprobe(tmp_path, "diff", *map(str, profiles), "--json", "d.json", "-o", "file/x")
    assert_usage_error(run, "-o file/x", "file is a file, not a folder")
    (tmp_path / "figs" / "changes.png").mkdir(parents=True)
    run = headprobe(tmp_path, "diff", *map(str, profiles), "--json", "d.json", "-o", "figs")
    assert_usage_error(run, "figs/changes.png", "is a folder")
    run = headprobe(tmp_path, "diff", *map(str, profiles), "--json", "new/changes.png",
                    "-o", "new")
    assert_usage_error(run, "-o draws changes.png there")
    assert not (tmp_path / "d.json").exists()


def test_diff_writes_its_json_and_figure_where_it_can(tmp_path, profiles):
    run = headprobe(tmp_path, "diff", *map(str, profiles), "--json", "d.json", "-o", "new/figs")
    assert run.rc == 1, run
    assert json.loads((tmp_path / "d.json").read_text("utf-8"))["changed"]
    assert (tmp_path / "new" / "figs" / "changes.png").stat().st_size > 0
    assert run.stdout.splitlines()[-2:] == ["diff: d.json", "new/figs/changes.png"]


class _FullDisk:
    """The `os` module as `headprobe.atomic` sees it, on a disk with no space left."""

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    @staticmethod
    def write(handle: int, data: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_diff_onto_a_full_disk_is_a_usage_error(tmp_path, profiles, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HEADPROBE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(atomic, "os", _FullDisk())
    for option, target in [("-o", "figs"), ("--json", "d.json")]:
        capsys.readouterr()
        rc = main(["diff", *map(str, profiles), option, target])
        err = capsys.readouterr().err
        assert rc == 4, err
        assert err.startswith("ERROR: cannot write ") and err.count("\n") == 1, err
        assert "No space left on device; free some space" in err
    assert list((tmp_path / "figs").iterdir()) == []  # no temporary file left behind
    assert not (tmp_path / "d.json").exists()


def test_profile_into_a_fifo_a_device_or_under_a_file_fails_before_the_model_runs(
        tmp_path, planted_model):
    fifo, device = tmp_path / "fifo", character_device(tmp_path)
    os.mkfifo(fifo)
    (tmp_path / "file").write_text("", encoding="utf-8")
    for target, words in [(fifo, ["named pipe"]), (device, ["a device"]),
                          ("file/p.json", ["file is a file, not a folder"]),
                          (tmp_path, ["is a folder"])]:
        run = headprobe(tmp_path, "profile", "--model", "nobody/no-such-model", "-o",
                        str(target))
        assert_usage_error(run, f"-o {target}", *words)  # not "could not be found"
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


# --- hostile profile files --------------------------------------------------------------------


def _with_value(value_text: str) -> str:
    return json.dumps(_profile()).replace("0.5", value_text, 1)


@pytest.mark.parametrize("text, words", [
    (_with_value("1" + "0" * 400), ["heads.L1H1.argmax:previous", "(401 characters)",
                                    "is not a number from 0 to 1"]),
    (_with_value("1e400"), ["heads.L1H1.argmax:previous: inf"]),
    (_with_value("NaN"), ["heads.L1H1.argmax:previous: nan"]),
    (_with_value("true"), ["heads.L1H1.argmax:previous: True"]),
    (_with_value("-0.5"), ["heads.L1H1.argmax:previous: -0.5"]),
    ("[" * 200_000 + "]" * 200_000, ["nests deeper than Python reads"]),
    (json.dumps(_profile(model="\ud800x")), ["model: holds U+D800 (a lone surrogate"]),
    (json.dumps(_profile(model="a\nb")), ["model: holds U+000A"]),
    (json.dumps(_profile(model="m" * 5000)), ["model: 5,000 characters long"]),
    (json.dumps(_profile()).replace('"count": 3', '"count": ' + "9" * 400),
     ["sentences.count: expected a whole number"]),
    (json.dumps(_profile()).replace('"L1H2"', '"L1H01"'), ["not every head of a 2-layer, "
                                                           "3-head model once"]),
], ids=["400 digits", "1e400", "NaN", "true", "negative", "nested 200k deep", "surrogate",
        "line break", "long name", "count of 400 digits", "head twice"])
def test_a_hostile_profile_file_is_a_located_usage_error(tmp_path, profiles, text, words):
    (tmp_path / "bad.json").write_text(text, encoding="utf-8", errors="surrogatepass")
    run = headprobe(tmp_path, "diff", "bad.json", str(profiles[1]), "-o", "figs")
    assert_usage_error(run, "bad.json: not a", *words)
    assert not (tmp_path / "figs").exists()


def test_a_profile_over_the_file_size_cap_is_refused(tmp_path, profiles, monkeypatch):
    monkeypatch.setenv("HEADPROBE_MAX_FILE_MB", "0.001")
    run = headprobe(tmp_path, "diff", *map(str, profiles))
    assert_usage_error(run, "a.json: cannot read the profile: the file is larger than 0.001 MiB")


def test_a_model_too_large_to_draw_is_refused_before_anything_is_written(tmp_path):
    a = _write(tmp_path / "a.json", _profile(layers=65, heads=1))
    b = _write(tmp_path / "b.json", _profile(layers=65, heads=1, value=0.6))
    run = headprobe(tmp_path, "diff", str(a), str(b), "--json", "d.json", "-o", "figs")
    assert_usage_error(run, "-o: changes.png draws a cell per head", "at most 64 layers",
                       "m has 65 layers of 1 heads", "leave -o out")
    assert not (tmp_path / "d.json").exists() and not (tmp_path / "figs").exists()
    run = headprobe(tmp_path, "diff", str(a), str(b), "--json", "d.json")
    assert run.rc == 1 and len(json.loads((tmp_path / "d.json").read_text())["heads"]) == 65


# --- discover: the sentence file beside the hypothesis file, and every output checked first ---


def test_discover_never_overwrites_a_sentence_file_it_did_not_write(tmp_path):
    mine = tmp_path / "found.sentences.txt"
    mine.write_text("My own sentence, which I keep.\n", encoding="utf-8")
    run = headprobe(tmp_path, "discover", "--model", MINILM, "-o", "found.yaml", "-q")
    assert_usage_error(run, "-o found.yaml: found.sentences.txt already exists",
                       "does not overwrite", "--sentences found.sentences.txt")
    assert mine.read_text("utf-8") == "My own sentence, which I keep.\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["found.sentences.txt"]


def test_discover_refuses_a_broken_link_in_place_of_its_sentence_file_before_running(
        tmp_path):
    (tmp_path / "found.sentences.txt").symlink_to(tmp_path / "nowhere.txt")
    run = headprobe(tmp_path, "discover", "--model", MINILM, "-o", "found.yaml", "-q")
    assert_usage_error(run, "found.sentences.txt already exists as a broken symbolic link",
                       "does not overwrite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["found.sentences.txt"]


@pytest.mark.parametrize("args, words", [
    (["--figure", "file/grid.png"], ["--figure file/grid.png: file is a file, not a folder"]),
    (["--figure", "fifo.png"], ["--figure fifo.png: is a named pipe (FIFO)"]),
    (["-o", "fifo.yaml"], ["-o fifo.yaml: is a named pipe (FIFO)"]),
    (["-o", "file/found.yaml"], ["-o file/found.yaml: file is a file"]),
    (["-o", "x.yaml", "--figure", "unwritable/grid.png"], ["cannot write in unwritable"]),
], ids=["figure under a file", "figure a fifo", "yaml a fifo", "yaml under a file",
        "figure in an unwritable folder"])
def test_discover_checks_every_output_before_the_model_runs(tmp_path, args, words):
    if "unwritable/grid.png" in args:
        if os.geteuid() == 0:
            pytest.skip("root writes in any folder")
        (tmp_path / "unwritable").mkdir(mode=0o500)
    (tmp_path / "file").write_text("", encoding="utf-8")
    os.mkfifo(tmp_path / "fifo.png")
    os.mkfifo(tmp_path / "fifo.yaml")
    before = sorted(tmp_path.iterdir())
    run = headprobe(tmp_path, "discover", "--model", "nobody/no-such-model", "-o", "found.yaml",
                    *args, "-q")
    assert_usage_error(run, *words)
    assert sorted(tmp_path.iterdir()) == before


# A discover killed (SIGKILL) when it renames the hypothesis file into place: the sentence file
# is renamed before it, so the hypothesis file never points at a missing file.
KILLED_AT_THE_YAML = """\
import os, sys
rename = os.replace
def replace(source, target, *args, **kwargs):
    if str(target).endswith(".yaml"):
        os._exit(137)
    return rename(source, target, *args, **kwargs)
os.replace = replace
from headprobe.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def discovered(tmp_path_factory) -> tuple[Path, CheckRun]:
    """discover on MiniLM and the bundled set, written to found.yaml (and its sentences)."""
    root = tmp_path_factory.mktemp("discovered")
    run = run_command([*headprobe_command(), "discover", "--model", MINILM, "-o", "found.yaml",
                       "-q"], root, root / "cache")
    return root, run


def test_discover_killed_between_its_renames_leaves_the_old_state(discovered):
    root, first = discovered
    assert first.rc == 0, first
    copy, output = root / "found.sentences.txt", root / "found.yaml"
    assert copy.read_bytes() == bundled_path().read_bytes()
    old_yaml, old_inode = output.read_bytes(), copy.stat().st_ino
    args = ["discover", "--model", MINILM, "-o", "found.yaml", "-q"]
    killed = run_command([sys.executable, "-c", KILLED_AT_THE_YAML, *args], root, root / "cache")
    assert killed.rc == 137, killed
    assert output.read_bytes() == old_yaml and copy.stat().st_ino == old_inode
    fresh = root / "fresh"
    fresh.mkdir()
    killed = run_command([sys.executable, "-c", KILLED_AT_THE_YAML, *args], fresh, root / "cache")
    assert killed.rc == 137, killed
    assert not (fresh / "found.yaml").exists()  # and the sentences are whole, or not there
    assert (fresh / "found.sentences.txt").read_bytes() == copy.read_bytes()
    again = run_command([*headprobe_command(), *args], root, root / "cache")
    assert again.rc == 0, again
    assert "(its sentences: found.sentences.txt, kept as it was)" in again.stdout
    assert copy.stat().st_ino == old_inode


def test_discover_interrupted_at_its_yaml_rename_removes_the_copy_it_made(
        discovered, tmp_path, monkeypatch, capsys):
    root, first = discovered
    assert first.rc == 0, first
    rename = os.replace

    def interrupted(source, target, *args, **kwargs):
        if str(target).endswith(".yaml"):
            raise KeyboardInterrupt  # Ctrl-C between the two renames
        return rename(source, target, *args, **kwargs)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HEADPROBE_CACHE_DIR", str(root / "cache"))
    monkeypatch.setattr(os, "replace", interrupted)
    rc = main(["discover", "--model", MINILM, "-o", "found.yaml", "-q"])
    assert rc == 2, capsys.readouterr()
    assert list(tmp_path.iterdir()) == []  # no hypothesis file, no copy, no staging folder
