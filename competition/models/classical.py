"""Classical baselines on pooled clip features: ridge, SVR, gradient boosting. Often the strongest on
small data, so they stay honest competitors for the sequence models. Missing features (a clip whose
extraction failed) are imputed with an explicit missing-indicator column, never silently zero-filled."""
from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.multioutput import MultiOutputRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR

from competition.models.base import FeatureBank, Model
from competition.models.registry import register_model


class PooledModel(Model):
    """fit/predict on FeatureBank.pooled(); subclasses give the sklearn regressor."""

    def regressor(self):
        raise NotImplementedError

    def fit(self, bank: FeatureBank, train_ids, y_train, val_ids, y_val) -> None:
        x = bank.pooled(train_ids)
        self.pipeline: Pipeline = make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            StandardScaler(), self.regressor())
        self.pipeline.fit(x, y_train)

    def predict(self, bank: FeatureBank, ids) -> np.ndarray:
        return np.clip(self.pipeline.predict(bank.pooled(ids)), 0.0, 1.0)

    def save(self, directory: Path) -> None:
        joblib.dump(self.pipeline, Path(directory) / "model.joblib")

    def load(self, directory: Path) -> None:
        self.pipeline = joblib.load(Path(directory) / "model.joblib")


@register_model("ridge")
class RidgeModel(PooledModel):
    def regressor(self):
        return Ridge(alpha=float(self.params.get("alpha", 10.0)))


@register_model("svr")
class SVRModel(PooledModel):
    def regressor(self):
        return MultiOutputRegressor(SVR(C=float(self.params.get("C", 1.0)),
                                        epsilon=float(self.params.get("epsilon", 0.05)),
                                        gamma=self.params.get("gamma", "scale")))


@register_model("gbm")
class GBMModel(PooledModel):
    def regressor(self):
        return MultiOutputRegressor(HistGradientBoostingRegressor(
            learning_rate=float(self.params.get("learning_rate", 0.05)),
            max_iter=int(self.params.get("max_iter", 200)),
            max_leaf_nodes=int(self.params.get("max_leaf_nodes", 15)),
            l2_regularization=float(self.params.get("l2_regularization", 1.0)),
            random_state=self.seed))
