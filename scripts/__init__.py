"""Developer entry points: the local stack, the demo, benchmarks and operations helpers."""
