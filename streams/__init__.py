"""Stream processing: Faust workers that deduplicate, count and expose case events."""
