"""training layer (see DESIGN in docs/)."""
