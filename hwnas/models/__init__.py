"""ONNX files: export with verification and safe loading (``onnx_io``), and conversion to the
precision a device runs (``quantize``)."""
