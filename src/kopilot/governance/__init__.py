"""Guardrails every action passes before it touches a cluster, and the audit log of every verdict."""
