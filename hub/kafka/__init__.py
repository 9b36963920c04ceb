"""Thin Kafka client helpers the hub's processes share: readers, admin clients, client security."""
