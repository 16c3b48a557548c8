"""The model: a Flax encoder of the BERT family equal to Hugging Face's, loaded offline from
real checkpoints.

Modules, bottom to top: `config` (config.json -> EncoderConfig), `families` (one module per
model family: its config fields, weight names, special tokens), `encoder` (the pure forward
pass), `weights` (pure renaming of Hugging Face weights), `checkpoint` (reading files,
fingerprints), `resolve` (spec -> folder), `tokenize` (fast tokenizer), `info` (what is known
without JAX), `loaded` (`load`, `Model`).
Importing this package imports nothing heavy; `encoder` and `loaded.Model` bring in JAX.
"""
