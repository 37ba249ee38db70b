"""codec layer (see DESIGN in docs/)."""
