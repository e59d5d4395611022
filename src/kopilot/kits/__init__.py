"""Small shared kits: the clock and seeded randomness."""
