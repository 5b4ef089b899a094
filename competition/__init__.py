"""ERI competition toolkit: data -> folds -> features -> models -> training -> OOF -> tuning -> blending -> submission."""
__version__ = "0.1.0"
