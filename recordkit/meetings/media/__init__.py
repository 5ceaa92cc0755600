"""The WebRTC media plane: rooms of peers forwarding each other's media, and the recorder's view of them."""
