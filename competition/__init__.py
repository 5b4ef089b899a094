"""ERI competition toolkit, in layers: core -> data -> folds -> features -> models -> pipeline -> submission."""
__version__ = "0.1.0"
