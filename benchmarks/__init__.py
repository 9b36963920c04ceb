"""Benchmarks that run against a real local Kafka broker; see docs/benchmarks.md."""
