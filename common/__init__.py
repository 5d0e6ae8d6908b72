"""What every coir package uses: user-facing errors, typed config loading, JSON helpers, atomic writes
and the shard sample field names. Imports nothing else of coir (datasets, pipeline, eval and launch
all import it)."""
