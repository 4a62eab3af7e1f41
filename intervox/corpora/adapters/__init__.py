"""Corpus adapters: one module per corpus layout, each with `prepare(root, out, **options) -> Path`."""
