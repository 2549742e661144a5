"""Datasets: Cityscapes, GTA5, joint transforms, the class table and the synthetic two-domain world."""
