"""Pipeline commands: experiment directories, run_fold, tune, blend (ensembling), predict, report, results."""
