"""aggregation layer (see DESIGN in docs/)."""
