"""Remote targets: profile a device over SSH with only Python, numpy and onnxruntime on it.

``agent.py`` is the only code that runs on the target (shipped there by hwnas, beside a copy of
``hwnas/timing.py``); ``ssh.py`` is the host side.
"""
