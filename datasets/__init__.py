"""Datasets: Cityscapes, GTA5, their label mappings, the prepared-set cache, joint transforms and the
synthetic two-domain world (the class table itself is ``utils.classes``)."""
from datasets.cityscapes import Cityscapes
from datasets.gta5 import GTA5

__all__ = ["Cityscapes", "GTA5"]
