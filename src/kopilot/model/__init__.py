"""The shared picture of a cluster: resources, GPUs and MIG geometry, nodes, pods, services, actions.

Everything here is plain, immutable data with no I/O. Policies read these objects; worlds build them.
"""
