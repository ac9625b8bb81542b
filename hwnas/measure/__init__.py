"""The one measurement stack: session settings, the timing protocol, energy meters, the device
fingerprint and core pinning.

It needs only numpy and onnxruntime (never torch), and imports nothing from hwnas but itself and
``hwnas.core.errors``: the host imports it, and the same files are copied to a remote target and
run there by ``agent.py``, so local and remote measurements cannot drift apart.
"""
