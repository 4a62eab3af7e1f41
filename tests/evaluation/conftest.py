"""Fixtures of the evaluation tests; the data builders live in evalfixtures.py."""

from __future__ import annotations

import pytest
from evalfixtures import FeatureWorld, World, default_splits, write_feature_dir


@pytest.fixture(scope="session")
def feature_world(tmp_path_factory: pytest.TempPathFactory) -> FeatureWorld:
    world = World(0)
    features = write_feature_dir(tmp_path_factory.mktemp("features"), world, default_splits())
    return FeatureWorld(features, world)
