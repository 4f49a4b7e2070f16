"""predictive (see DESIGN.md section 2)."""
