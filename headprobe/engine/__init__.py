"""Evaluating claims over sentences, outside pytest: what `headprobe check` and the commands
that profile, diff and discover heads share.

- `models`: what evaluation needs of a model (`ModelLike`), and `ModelRegistry`: each model
  resolved once, its fingerprint hashed in the background, its weights loaded only when a run
  misses the cache.
- `evaluate`: `ClaimJob`s (`headprobe.claims.jobs`) + models + cache -> one `ClaimResult` per
  job.
- `figures`: failure diagrams of a result's worst sentences.

Nothing here imports pytest.
"""
