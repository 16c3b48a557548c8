"""Count what generated user input does to headprobe's parsers: valid parses, headprobe's own
errors (for whole files: with or without a line), and crashes (grouped by cause), with the
slowest input's time.

    python benchmarks/fuzz_inputs.py [--examples N]     # N per target (default 2000)

The inputs come from the fuzz suite's strategies (tests/fuzz/strategies.py). To measure another
version of headprobe, put it first on PYTHONPATH; the script uses only parse_claim,
parse_expectation, parse_measure, parse_annotated, parse_hypothesis_text and the position
selection, which every version has.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from fuzz.strategies import claim_texts, expectations, hypothesis_files, measures, sentences  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402


def _cause(error: BaseException) -> str:
    """``Type at file:line`` of the innermost headprobe frame (or the innermost frame)."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if "headprobe" in f.filename and "tests" not in f.filename]
    frame = (ours or frames or [None])[-1]
    where = f"{Path(frame.filename).name}:{frame.lineno}" if frame else "?"
    return f"{type(error).__name__} at {where}"


def measure(name: str, strategy, call, examples: int, *, needs_line: bool = False) -> dict:
    from headprobe.errors import ClaimFileError

    counts: collections.Counter[str] = collections.Counter()
    causes: collections.Counter[str] = collections.Counter()
    slowest = [0.0]

    @settings(max_examples=examples, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(value) -> None:
        start = time.perf_counter()
        try:
            call(value)
            counts["valid"] += 1
        except ClaimFileError as error:
            located = not needs_line or getattr(error, "line", None) is not None
            counts["user error" if located else "user error without a line"] += 1
        except RecursionError as error:
            counts["crash"] += 1
            causes[_cause(error)] += 1
        except Exception as error:
            counts["crash"] += 1
            causes[_cause(error)] += 1
        slowest[0] = max(slowest[0], time.perf_counter() - start)

    run()
    return {"target": name, "inputs": sum(counts.values()), **counts, "causes": causes,
            "slowest_s": slowest[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=2000)
    args = parser.parse_args()
    import numpy as np

    from headprobe.claims.files import parse_hypothesis_text
    from headprobe.claims.language import parse_claim, parse_expectation, parse_measure
    from headprobe.claims.sentences import parse_annotated
    from headprobe.evaluation.positions import level_view, select
    from headprobe.runs import Run

    run = Run(text="the cat's sat.", tokens=["[CLS]", "the", "cat", "'", "s", "sat", ".", "[SEP]"],
              input_ids=np.arange(8, dtype=np.int32), word_ids=(None, 0, 1, 2, 3, 4, 5, None),
              offsets=((0, 0), (0, 3), (4, 7), (7, 8), (8, 9), (10, 13), (13, 14), (0, 0)),
              attentions=np.full((1, 1, 8, 8), 1 / 8, dtype=np.float32))

    def claim(text: str) -> None:
        parsed = parse_claim(text)
        for level in ("token", "word"):
            select(level_view(run, level), parsed.source, parsed.target, ())

    base = Path(tempfile.mkdtemp(prefix="hp-fuzz-"))
    targets = [
        ("claim strings (parse + select)", claim_texts(), claim),
        ("expectations", expectations, parse_expectation),
        ("measures", measures, parse_measure),
        ("sentences", sentences, parse_annotated),
    ]
    rows = [measure(name, strategy, call, args.examples) for name, strategy, call in targets]
    rows.append(measure("hypothesis files", hypothesis_files(),
                        lambda text: parse_hypothesis_text(text, "fuzz.yaml", base),
                        args.examples, needs_line=True))
    print("| target | inputs | valid | user error | user error without a line | crashes | "
          "distinct causes | slowest |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['target']} | {row['inputs']} | {row.get('valid', 0)} | "
              f"{row.get('user error', 0)} | {row.get('user error without a line', 0)} | "
              f"{row.get('crash', 0)} | {len(row['causes'])} | {row['slowest_s']:.2f} s |")
    causes = collections.Counter()
    for row in rows:
        causes.update(row["causes"])
    if causes:
        print("\ncrashes by cause:")
        for cause, count in causes.most_common():
            print(f"  {count:6d}  {cause}")


if __name__ == "__main__":
    main()
