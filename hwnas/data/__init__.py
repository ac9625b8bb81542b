"""Datasets: read offline, checked, split by seed (``hwnas.data.datasets``)."""
