"""The embedded default: procedural datasets and small models with shipped weights (DESIGN.md section 6)."""
