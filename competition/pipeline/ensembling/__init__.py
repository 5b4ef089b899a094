"""Blending finished experiments: the library of OOF matrices and the selection methods."""
