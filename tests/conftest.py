"""Strict JAX settings for the whole suite: implicit rank promotion is a bug."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")  # plots are tested headless

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    doctest_namespace["jax"] = jax
