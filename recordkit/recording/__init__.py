"""Recordings: the state machine, the rules over the database, and (later) the recorder."""
