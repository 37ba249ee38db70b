"""cli layer (see DESIGN in docs/)."""
