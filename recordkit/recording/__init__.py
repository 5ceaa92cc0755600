"""Recordings: the state machine, the rules over the database, and the jobs that run the recorders (recorder/)."""
