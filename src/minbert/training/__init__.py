"""Optimisation: parameter groups, schedules, losses and the training loop."""
