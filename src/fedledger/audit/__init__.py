"""audit layer (see DESIGN in docs/)."""
