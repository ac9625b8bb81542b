"""What every stage shares and nothing else: errors, registries, TOML reading, Pareto tools,
version records and the torch-threads helper. Imports no other hwnas stage."""
