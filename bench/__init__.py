"""intervox benchmarks: `python -m bench.run` (`make bench`) writes bench/results.json + RESULTS.md."""
