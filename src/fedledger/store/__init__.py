"""store layer (see DESIGN in docs/)."""
