"""Datasets and the host -> device input pipeline.

Sources (`get_source`, `ArraySource`, `TfdsSource`, `load_fashion_mnist`) give random
access to uint8 images and int32 labels; `CorruptedSource` serves a split with one
ImageNet-C corruption (`corrupt`, `CORRUPTIONS`) applied to every image; the pipeline
(`train_batches`, `eval_batches`, `prefetch_to_device`) turns indices into global batches
sharded over the mesh.
"""

from jejax.data.errors import (
    CorruptDataError,
    DataError,
    DataNotFoundError,
    ImageShapeError,
    UnknownDatasetError,
)
from jejax.data.sources import ArraySource, Source, TfdsSource, get_source, validate_image_shape
from jejax.data.corruptions import CORRUPTIONS, CorruptedSource, corrupt
from jejax.data.fashion_mnist import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIRS,
    load_fashion_mnist,
    read_idx,
)
from jejax.data.pipeline import (
    batch_indices,
    epoch_permutation,
    eval_batches,
    host_pipeline_throughput,
    prefetch_to_device,
    process_rows,
    steps_per_epoch,
    to_global_array,
    train_batches,
)

__all__ = [
    "ArraySource",
    "CORRUPTIONS",
    "CorruptDataError",
    "CorruptedSource",
    "DataError",
    "DataNotFoundError",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIRS",
    "ImageShapeError",
    "Source",
    "TfdsSource",
    "UnknownDatasetError",
    "batch_indices",
    "corrupt",
    "epoch_permutation",
    "eval_batches",
    "get_source",
    "host_pipeline_throughput",
    "load_fashion_mnist",
    "prefetch_to_device",
    "process_rows",
    "read_idx",
    "steps_per_epoch",
    "to_global_array",
    "train_batches",
    "validate_image_shape",
]
