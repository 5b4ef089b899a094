"""Classical baselines on pooled clip features: ridge, SVR, gradient boosting. Often the strongest on
small data, so they stay honest competitors for the sequence models. Missing features (a clip whose
extraction failed) are imputed with an explicit missing-indicator column, never silently zero-filled.
For a classification task they regress the one-hot labels and normalise the clipped scores into class
probabilities (a least-squares classifier)."""
from __future__ import annotations

import os
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

from competition.features.bank import FeatureBank
from competition.models.base import Model
from competition.models.registry import register_model


class PooledModel(Model):
    """fit/predict on FeatureBank.pooled(); subclasses give the sklearn regressor."""

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
        joblib.dump(self.pipeline, Path(directory) / "model.joblib")

    def load(self, directory: Path) -> None:
        # joblib unpickles, which runs code from the file: only for experiment folders the user made.
        if os.environ.get("ERI_TRUST_PICKLE") != "1":
            raise PermissionError(
                f"{Path(directory) / 'model.joblib'}: loading a {type(self).__name__} checkpoint unpickles "
                "it, which can run code; set ERI_TRUST_PICKLE=1 if you created this experiment folder")
        self.pipeline = joblib.load(Path(directory) / "model.joblib")


@register_model("ridge")
class RidgeModel(PooledModel):
    """Saved as plain arrays (ridge.npz), so loading never unpickles anything."""

    def regressor(self):
        return Ridge(alpha=float(self.params.get("alpha", 10.0)))

    def save(self, directory: Path) -> None:
        imputer, scaler, ridge = (self.pipeline[i] for i in range(3))
        indicator = imputer.indicator_.features_ if imputer.indicator_ is not None else np.zeros(0, int)
        with open(Path(directory) / "ridge.npz", "wb") as fh:
            np.savez(fh, fill=imputer.statistics_, indicator=indicator, mean=scaler.mean_,
                     scale=scaler.scale_, coef=ridge.coef_, intercept=ridge.intercept_)

    def load(self, directory: Path) -> None:
        with np.load(Path(directory) / "ridge.npz", allow_pickle=False) as z:
            self.state = {k: z[k] for k in z.files}
        self.pipeline = None

    def predict(self, bank: FeatureBank, ids) -> np.ndarray:
        if getattr(self, "pipeline", None) is not None:
            return super().predict(bank, ids)
        st = self.state
        x = bank.pooled(ids)
        missing = np.isnan(x)
        x = np.where(missing, st["fill"], x)
        x = np.concatenate([x, missing[:, st["indicator"].astype(int)].astype(float)], axis=1)
        z = (x - st["mean"]) / st["scale"]
        return self.finish(z @ st["coef"].T + st["intercept"])


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
