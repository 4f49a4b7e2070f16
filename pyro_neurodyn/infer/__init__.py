"""infer (see DESIGN.md section 2)."""
