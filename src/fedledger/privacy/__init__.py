"""privacy layer (see DESIGN in docs/)."""
