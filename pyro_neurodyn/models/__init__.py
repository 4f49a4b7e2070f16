"""models (see DESIGN.md section 2)."""
