"""Reports for people: terminal tables and a self-contained HTML page with plots."""
