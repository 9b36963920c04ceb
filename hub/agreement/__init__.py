"""The data-sharing agreement: partners, deadlines, the timetable, disclosure, retention."""
