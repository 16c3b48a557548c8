"""headprobe's caches of computed results, all under `headprobe.paths.cache_root`.

- `entries`: the forward cache (SQLite): each sentence's attention of the heads claims need,
  and the claims' numbers (`scores`), keyed by model fingerprint and tokenization, verified on
  every read.
- `runs`: runs rebuilt from the forward cache, the model run only for what misses.
- `scores`: the claims' per-sentence numbers kept in the forward cache's entries.
- `fingerprints`: a model's fingerprint from its files, remembered and verified.
- `safety`: bounded reads, stale temporaries and the one warning per run that every cache uses.

Compiled programs have their own store (`headprobe.model.programs`). A cache is never the
source of truth: what fails verification is ignored, recomputed and reported once.
"""
