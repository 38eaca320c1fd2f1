"""LightningDataModules over one in-memory batch pipeline (see ``base.py``)."""

from depthbench.data.base import InMemoryDataModule
from depthbench.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from depthbench.data.digits import DigitsDataModule
from depthbench.data.fashion_mnist import FashionMNISTDataModule
from depthbench.data.flowers import Flowers102DataModule
from depthbench.data.image_folder import ImageFolderDataModule
from depthbench.data.loader import TensorBatchLoader
from depthbench.data.mnist import MNISTDataModule
from depthbench.data.mnist1d import MNIST1DDataModule
from depthbench.data.synthetic import SyntheticDataModule

__all__ = [
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "DigitsDataModule",
    "FashionMNISTDataModule",
    "Flowers102DataModule",
    "ImageFolderDataModule",
    "InMemoryDataModule",
    "MNIST1DDataModule",
    "MNISTDataModule",
    "SyntheticDataModule",
    "TensorBatchLoader",
]
