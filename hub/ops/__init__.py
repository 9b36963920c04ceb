"""Operating a hub: the local broker, topics, access control lists, the Prometheus runner."""
