"""sim layer (see DESIGN in docs/)."""
