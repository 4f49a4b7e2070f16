"""dynamics (see DESIGN.md section 2)."""
