"""Apps, meetings, participants, presets and sessions; media/ (later) holds rooms and signalling."""
