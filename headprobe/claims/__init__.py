"""The claim language and hypothesis files: pure parsing and validation (no JAX, no model)."""
