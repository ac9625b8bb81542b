"""Devices: the TOML spec (``spec``), energy meters chosen from it (``energy``), and the targets
measurements run on: this machine, or a remote one over SSH (``ssh``)."""
