"""The frozen teacher's signal, live (`signal`) or read from a cache built once per search (`cache`)."""
