"""Datasets (``sources``), per-worker sharding (``sharding``) and batch streams (``batches``)."""
