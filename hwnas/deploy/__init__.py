"""After the search: retrain front members, export them as verified ONNX with model cards,
re-measure them on the device, and report."""
