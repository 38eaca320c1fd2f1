"""User tools on trained runs: ``depthbench predict``, ``depthbench attention``, confusion."""
