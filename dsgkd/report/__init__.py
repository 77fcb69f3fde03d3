"""What a search leaves, read back: the run model (`run_model`), tables and importance (`analysis`), the plot
files of `dsgkd analyze` (`analysis_plots`, drawing dsgkd's own charts from `trial_charts`) and the best config
(`export`). Ray-free: the Tune experiment is read through `dsgkd.search.trial_records`."""
