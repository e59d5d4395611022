"""Scaling policies: the Kubernetes HPA baseline, kopilot's predictive policy, and forecasters."""
