"""Clients of the planning service and the closed-loop evaluation harness."""
