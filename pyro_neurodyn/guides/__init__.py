"""guides (see DESIGN.md section 2)."""
