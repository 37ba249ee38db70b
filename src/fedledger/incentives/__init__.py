"""Contribution scoring, score consensus and the reward split: who added how much value."""
