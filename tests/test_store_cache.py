import numpy as np
import pytest

from competition.features import store as store_mod
from competition.features.registry import FeatureOutput, get_extractor
from competition.features.store import FeatureStore


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "_CACHE", type(store_mod._CACHE)())
    monkeypatch.setattr(store_mod, "_CACHE_BYTES", [0])
    return FeatureStore(tmp_path, get_extractor("mfcc"))


def test_repeated_loads_share_read_only_arrays(store):
    store.save("a", FeatureOutput(np.ones((4, 3)), np.arange(4.0)))
    first, second = store.load("a"), store.load("a")
    assert second is first
    with pytest.raises(ValueError):
        first.x[0, 0] = 5.0          # a consumer cannot corrupt what the next fold reads


def test_a_rewritten_clip_is_read_again(store):
    store.save("a", FeatureOutput(np.ones((4, 3)), np.arange(4.0)))
    assert store.load("a").x.sum() == 12
    store.save("a", FeatureOutput(np.full((5, 3), 2.0), np.arange(5.0)))
    assert store.load("a").x.sum() == 30


def test_budget_evicts_and_zero_disables(store, monkeypatch):
    monkeypatch.setenv("ERI_FEATURE_CACHE_MB", "0")
    store.save("a", FeatureOutput(np.ones((4, 3)), np.arange(4.0)))
    assert store.load("a") is not store.load("a") and store_mod._CACHE_BYTES[0] == 0
    monkeypatch.setenv("ERI_FEATURE_CACHE_MB", "1")
    for i in range(12):  # 12 x ~100 KB > 1 MB: the oldest entries go
        store.save(f"c{i}", FeatureOutput(np.zeros((200, 128)), np.arange(200.0)))
        store.load(f"c{i}")
    assert 0 < store_mod._CACHE_BYTES[0] <= 1 << 20
    assert len(store_mod._CACHE) < 12
