"""Datasets: Cityscapes, GTA5, joint transforms, the class table and the synthetic two-domain world."""
from datasets.cityscapes import Cityscapes
from datasets.gta5 import GTA5

__all__ = ["Cityscapes", "GTA5"]
