"""Model references and presets (`presets`), loading (`load`) and the offline stand-ins (`tiny`).

Import from the submodules: this package stays import-free so that resolving a reference or reading
the cache path does not pay for importing transformers.
"""
