"""SimWorld: the deterministic discrete-event digital twin that replays real traces."""
