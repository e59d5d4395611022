"""The loop: sense -> decide -> govern -> act, the same against the digital twin and a live cluster."""
