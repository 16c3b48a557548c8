"""Regression testing of heads (SPEC §10–11): snapshots of claims' values (`snapshots`),
profiles of every head over a sentence set (`profiles`), and diffs of two profiles (`diff`)."""
