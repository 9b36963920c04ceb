"""Closed periods released to the trends topic on the timetable, and their metrics."""
