"""Performance benchmarks (issue 6): `make bench` or `python -m benchmarks.run`."""
