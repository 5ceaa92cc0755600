"""recordkit: a self-hosted meeting-recording service speaking the RealtimeKit Recordings API."""

__version__ = "0.1.0"
