"""incentives layer (see DESIGN in docs/)."""
