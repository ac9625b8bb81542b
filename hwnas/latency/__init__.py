"""Latency: profile a device into a table (``profiler``), read it (``table``), predict whole
models from it (``predictor``) and check the prediction against fresh measurements
(``validate``)."""
