"""chain layer (see DESIGN in docs/)."""
