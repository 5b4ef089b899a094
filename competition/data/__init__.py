from competition.data.contract import (  # noqa: F401
    DATA_INFO, HUME_EMOTIONS, ID_COL, SPLIT_COL, SPLITS, DataError, Dataset, bracket_id,
    load_dataset, media_path, normalise_id,
)
