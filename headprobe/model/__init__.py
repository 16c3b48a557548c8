"""The engine: a Flax BERT equal to Hugging Face's, loaded offline from real checkpoints.

Modules, bottom to top: `config` (config.json -> BertConfig), `bert` (the pure forward pass),
`weights` (pure renaming of Hugging Face weights), `checkpoint` (reading files, fingerprints),
`resolve` (spec -> folder), `tokenize` (fast tokenizer), `api` (`load`, `Model`).
Importing this package imports nothing heavy; `bert` and `api.Model` bring in JAX.
"""
