"""Evaluation: attention + tokens + claim → results. Pure numpy; no JAX, no model, no files
(`headprobe.engine` puts it together with models and caches).

- `positions`: a run at ``level: token`` / ``word``; the sources and targets of a claim.
- `measures`: argmax, topk, mass per source row; the fixed-offset baseline.
- `intervals`: Wilson and sentence-bootstrap intervals.
- `verdict`: pooled values, pass/fail, quantifiers, health warnings.
- `accumulate`: `score_sentence` and the streaming `ClaimAccumulator`.
- `results`: the frozen `SentenceScore` and `ClaimResult` (report.json entries).
- `views`: `attention_view` for failure diagrams.
- `profile_stats`: every head's profile statistics at once (SPEC §11, §13).
- `checks`: checks of a claim on its sentences' tokens, before any attention (collection).
"""

from __future__ import annotations

from headprobe.evaluation.accumulate import ClaimAccumulator, score_sentence
from headprobe.evaluation.results import Baseline, ClaimResult, SentenceScore
from headprobe.evaluation.views import AttentionView, attention_view

__all__ = ["AttentionView", "Baseline", "ClaimAccumulator", "ClaimResult", "SentenceScore",
           "attention_view", "score_sentence"]
