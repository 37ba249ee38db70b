"""roles layer (see DESIGN in docs/)."""
