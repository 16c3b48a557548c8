"""The orchestration: models, caches and the pure evaluation (`headprobe.evaluation`) put
together, for `headprobe check` (through the pytest plugin), the commands that profile, diff and
discover heads, and claims written in Python. Nothing here imports pytest.

- `models`: `ModelHandle` (a model by spec, loaded on the first forward pass, with the claim
  builder) and `ModelRegistry` (each model resolved once, its fingerprint hashed in the
  background, loaded at most once).
- `evaluate`: `ClaimJob`s (`headprobe.claims.jobs`) + models + cache -> one `ClaimResult` per
  job.
- `claim_api`: claims written in Python (``model.claim(...).over(...).argmax()``).
- `scores`: each claim's per-sentence numbers, kept in the forward cache's entries.
- `profiling`: a model's profile over a sentence set (SPEC §11).
- `failure_figures`: failure diagrams of a result's worst sentences.
"""
