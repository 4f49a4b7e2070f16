"""User-facing model classes with ``fit`` / decode / forecast / ``save`` / ``load`` (above ``infer``)."""
