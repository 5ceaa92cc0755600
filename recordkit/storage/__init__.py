"""Where files go: the built-in bucket and the user's external stores."""
