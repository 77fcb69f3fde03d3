"""What a search leaves, read back: the run model (`results`), tables and importance (`analysis`), plots
(`plots`) and the best config (`export`). Ray-free: the Tune experiment is read through `dsgkd.search.records`."""
