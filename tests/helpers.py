"""Small helpers shared by tests."""

from __future__ import annotations


def fixed(model):
    """A model factory (``held_blocks``, ``initialize``) that always returns ``model``: for protocols
    that hold the whole model, driven directly by a test."""

    def make_model(held_blocks=None, initialize=True):
        assert held_blocks is None
        return model

    return make_model
