"""Feature extraction: extractors register in `registry`, results live in the `store`."""
