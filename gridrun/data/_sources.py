"""Where each dataset's files come from and how to check them: the one table of URLs and
checksums, plus class names.

Loaders take this table as an argument, so tests (or a user with a local mirror) can
pass their own. Checksums are those of the official releases: sha256 of the MNIST and
Fashion-MNIST IDX files (their published MD5s match too), and the MD5s that the
CIFAR-10 authors and torchvision publish for CIFAR-10.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

from gridrun.data._files import RemoteFile

__all__ = ["SOURCES", "CLASSES", "IDX_ROLES", "CIFAR_MEMBERS", "CIFAR_FOLDER"]

# Roles of the four IDX files, mapped to their official file names.
IDX_ROLES = MappingProxyType({
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
})

_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

# role: (bytes, sha256)
_MNIST_SUMS = {
    "train_images": (9912422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    "train_labels": (28881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    "test_images": (1648877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    "test_labels": (4542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
}
_FASHION_SUMS = {
    "train_images": (26421880, "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
    "train_labels": (29515, "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
    "test_images": (4422102, "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
    "test_labels": (5148, "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
}

# Members of the CIFAR-10 archive, in the order the archive stores them, with md5s.
CIFAR_MEMBERS = MappingProxyType({
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
})
CIFAR_FOLDER = "cifar-10-batches-py"


def _idx_files(folder: str, base_url: str, sums: Mapping) -> Mapping[str, RemoteFile]:
    return MappingProxyType({
        role: RemoteFile(f"{folder}/{name}", base_url + name, sums[role][1], size=sums[role][0])
        for role, name in IDX_ROLES.items()
    })


def _cifar_files() -> Mapping[str, RemoteFile]:
    files = {
        "archive": RemoteFile(
            "cifar10/cifar-10-python.tar.gz",
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
            "c58f30108f718f92721af3b95e74349a",
            algorithm="md5",
            size=170498071,
        )
    }
    # An already-extracted folder is accepted too; its files cannot be downloaded alone.
    for member, md5 in CIFAR_MEMBERS.items():
        files[member] = RemoteFile(f"cifar10/{CIFAR_FOLDER}/{member}", None, md5, "md5")
    return MappingProxyType(files)


# dataset name -> role -> file
SOURCES: Mapping[str, Mapping[str, RemoteFile]] = MappingProxyType({
    "mnist": _idx_files("mnist", _MNIST_URL, _MNIST_SUMS),
    "fashion_mnist": _idx_files("fashion-mnist", _FASHION_URL, _FASHION_SUMS),
    "cifar10": _cifar_files(),
})

_DIGITS = tuple(str(d) for d in range(10))
CLASSES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "digits": _DIGITS,
    "mnist": _DIGITS,
    # Zalando's label descriptions, in label order.
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    # CIFAR-10's class names are read from batches.meta; listed here for reference only.
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer",
                "dog", "frog", "horse", "ship", "truck"),
})
