"""The HTTP and websocket edge."""
