"""Classical baselines on pooled clip features: ridge, SVR, gradient boosting (missing features imputed
with a missing-indicator column). More: docs/PIPELINE.md, "Classical baselines: classical.py"."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import skops.io
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.multioutput import MultiOutputRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR

from competition.features.bank import FeatureBank
from competition.models.base import Model
from competition.models.registry import register_model

CHECKPOINT = "model.skops"
# Types outside skops' own trusted set that our pipelines contain; a checkpoint naming any other type
# is refused (skops.io loads without unpickling, and only the types it is told to trust).
TRUSTED_TYPES = frozenset({"numpy.dtype", "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"})


def load_pipeline(path: Path) -> Pipeline:
    """A pipeline saved by PooledModel.save, refused if it holds a type we did not put there."""
    untrusted = set(skops.io.get_untrusted_types(file=path))
    if untrusted - TRUSTED_TYPES:
        raise PermissionError(f"{path}: checkpoint holds type(s) this toolkit never saves: "
                              f"{sorted(untrusted - TRUSTED_TYPES)}; refusing to load it")
    return skops.io.load(path, trusted=sorted(untrusted))


class PooledModel(Model):
    """fit/predict on FeatureBank.pooled() with imputer -> scaler -> the subclass's sklearn regressor,
    saved with skops (no pickle)."""

    def regressor(self):
        raise NotImplementedError

    def finish(self, pred: np.ndarray) -> np.ndarray:
        """Regressor output -> the task's output: values in [0, 1], or class probabilities."""
        p = np.clip(pred, 0.0, 1.0)
        if self.task.output != "softmax":
            return p
        total = p.sum(1, keepdims=True)
        return np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / p.shape[1])

    def fit(self, bank: FeatureBank, train_ids, y_train, val_ids, y_val) -> None:
        x = bank.pooled(train_ids)
        self.pipeline: Pipeline = make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            StandardScaler(), self.regressor())
        self.pipeline.fit(x, y_train)

    def predict(self, bank: FeatureBank, ids) -> np.ndarray:
        return self.finish(self.pipeline.predict(bank.pooled(ids)))

    def save(self, directory: Path) -> None:
        skops.io.dump(self.pipeline, Path(directory) / CHECKPOINT)

    def load(self, directory: Path) -> None:
        self.pipeline = load_pipeline(Path(directory) / CHECKPOINT)


@register_model("ridge")
class RidgeModel(PooledModel):
    default_params = {"alpha": 10.0}

    def regressor(self):
        return Ridge(alpha=float(self.cfg["alpha"]))


@register_model("svr")
class SVRModel(PooledModel):
    default_params = {"C": 1.0, "epsilon": 0.05, "gamma": "scale"}
    param_types = {"gamma": (str, int, float)}   # 'scale', 'auto' or a number

    def regressor(self):
        c = self.cfg
        return MultiOutputRegressor(SVR(C=float(c["C"]), epsilon=float(c["epsilon"]), gamma=c["gamma"]))


@register_model("gbm")
class GBMModel(PooledModel):
    default_params = {"learning_rate": 0.05, "max_iter": 200, "max_leaf_nodes": 15, "l2_regularization": 1.0}

    def regressor(self):
        c = self.cfg
        return MultiOutputRegressor(HistGradientBoostingRegressor(
            learning_rate=float(c["learning_rate"]), max_iter=int(c["max_iter"]),
            max_leaf_nodes=int(c["max_leaf_nodes"]), l2_regularization=float(c["l2_regularization"]),
            random_state=self.seed))
