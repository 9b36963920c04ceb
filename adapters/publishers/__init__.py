"""Publishers that move the outbox's events to the agency's case topic."""
