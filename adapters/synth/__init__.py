"""Synthetic people and agency exports for the demo, benchmarks and tests."""
