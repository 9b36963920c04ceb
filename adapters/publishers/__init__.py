"""Publishers that move the outbox's events to the agency's case topic.

``base`` holds what they share (the `Publisher` protocol, `KafkaUnavailable`,
the partition key), ``factory.make_publisher`` picks one from the settings.
"""
