"""Latent model-predictive control: objectives, guardrails, CEM / gradient / MPPI optimisers."""
