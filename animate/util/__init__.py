"""Small helpers every layer may use: atomic writes, the one content hasher, names, hosts, the cache folder."""
