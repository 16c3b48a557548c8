"""headprobe's caches of computed results, all under `headprobe.paths.cache_root`.

- `entries`: the forward cache (SQLite): each sentence's attention of the heads claims need,
  and the claims' numbers (written by `headprobe.engine.scores`), keyed by model fingerprint and
  tokenization, verified on every read.
- `cached_runs`: runs rebuilt from the forward cache, the model run only for what misses.
- `fingerprints`: a model's fingerprint from its files, remembered and verified.

What every on-disk cache shares (bounded reads, stale temporaries, one warning per run) is
`headprobe.cachefiles`. Compiled programs have their own store (`headprobe.model.programs`). A
cache is never the source of truth: what fails verification is ignored, recomputed and reported
once.
"""
