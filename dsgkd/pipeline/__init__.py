"""From a config to a trained run: load and check inputs (`prepare`), make the teachers a run needs
(`teachers`), train and write the run (`train`). Ray-free: a Ray Train worker calls the same functions."""
