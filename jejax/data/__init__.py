"""Datasets and the host -> device input pipeline.

Sources (`get_source`, `ArraySource`, `TfdsSource`, `load_fashion_mnist`) give random
access to uint8 images and int32 labels; `EncodedSource` decodes JPEG (or PNG, ...)
images from array_record files written by `write_encoded_images`; `CorruptedSource`
serves a split with one ImageNet-C corruption (`corrupt`, `CORRUPTIONS`) applied to
every image; the pipeline (`train_batches`, `eval_batches`, `prefetch_to_device`) turns
indices into global batches sharded over the mesh, and decodes in worker processes
with `train_batches(..., workers=N)`.

Multimodal: `load_multimodal` gives Fashion-MNIST (image, caption) and (image, speech)
pairs made offline (modules `captions`, `tokenizer`, `speech`, `multimodal`);
`get_source('fashion_mnist_captions' | 'fashion_mnist_binding', ...)` serves them as
training sources (`paired`); `TfdsCaptionSource` and `TfdsAudioSource` read coco_captions, spoken_digit, ... from
TFDS in the same layout; `load_audio` reads a WAV file as 16 kHz mono (`audio_io`).
`load_qa` gives questions about the images, answered from their class and attributes
(`qa`).
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
from jejax.data.encoded import EncodedSource, write_encoded_images
from jejax.data.audio_io import load_audio
from jejax.data.multimodal import (
    MultimodalConfig,
    MultimodalSource,
    load_class_prompts,
    load_multimodal,
)
from jejax.data.paired import PAIRED_DATASETS, BindingSource, paired_source, spoken_captions
from jejax.data.qa import QASource, load_qa, qa_sources
from jejax.data.tfds_multimodal import TfdsAudioSource, TfdsCaptionSource

__all__ = [
    "ArraySource",
    "BindingSource",
    "CORRUPTIONS",
    "CorruptDataError",
    "CorruptedSource",
    "DataError",
    "DataNotFoundError",
    "EncodedSource",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIRS",
    "ImageShapeError",
    "MultimodalConfig",
    "MultimodalSource",
    "PAIRED_DATASETS",
    "QASource",
    "Source",
    "TfdsAudioSource",
    "TfdsCaptionSource",
    "TfdsSource",
    "UnknownDatasetError",
    "batch_indices",
    "corrupt",
    "epoch_permutation",
    "eval_batches",
    "get_source",
    "host_pipeline_throughput",
    "load_audio",
    "load_class_prompts",
    "load_fashion_mnist",
    "load_multimodal",
    "load_qa",
    "paired_source",
    "prefetch_to_device",
    "process_rows",
    "qa_sources",
    "read_idx",
    "spoken_captions",
    "steps_per_epoch",
    "to_global_array",
    "train_batches",
    "validate_image_shape",
    "write_encoded_images",
]
