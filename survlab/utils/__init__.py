"""Small shared helpers (seeding, protocol cards, output files)."""
