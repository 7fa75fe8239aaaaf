"""Curated plausible bugs, one module per model family; scripts/mutants.py plants each in turn and
checks that the named tests fail. Format: see scripts/mutants.py."""
