"""Caffe's protobuf schema, built in Python (no ``protoc``, no generated ``caffe_pb2``).

Caffe stores nets (``.prototxt``, text format), trained weights (``.caffemodel``, binary) and solver
settings (``solver.prototxt``) as protocol buffers. Reading them only needs the *wire facts* of the
schema: message names, field names, field numbers, types and defaults. This module writes those
facts down as a small table (:data:`_MESSAGES`, :data:`_TOP_ENUMS`), turns the table into a
``FileDescriptorProto``, registers it in a **private** descriptor pool (so it never clashes with a
real ``caffe_pb2`` imported in the same process) and exposes one message class per message.

Coverage: every message a Caffe net, caffemodel or solver of the BVLC era uses for the layers we
know, plus the common extra layers (BatchNorm, Scale, PReLU, ...) so that such files still *parse*
(converting them is a separate question). Field numbers follow BVLC/caffe's ``caffe.proto``; field
types are wire compatible with it. The message full names are ``caffe.<Name>`` like Caffe's.

Usage::

    from mocha_triton.caffe import proto
    net = proto.NetParameter()
    layer = net.layer.add(name="conv1", type="Convolution")
    layer.convolution_param.num_output = 20
    proto.PoolingParameter.MAX        # nested enum values are class attributes
    proto.TRAIN, proto.TEST           # the top-level Phase enum
    proto.V1_LAYER_TYPE_NAMES[4]      # "Convolution" (V1 enum value -> Caffe type string)
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = [
    "PACKAGE",
    "POOL",
    "TRAIN",
    "TEST",
    "V1_LAYER_TYPE_NAMES",
    "message_class",
    "message_names",
]

PACKAGE = "caffe"
_FILE_NAME = "mocha_triton/caffe/caffe_subset.proto"

# ------------------------------------------------------------------------------------------------
# The table. A field is (label, type, name, number[, default]):
#   label: "o" optional, "r" repeated, "p" repeated + packed
#   type:  a scalar type name below, or the name of a message / enum of this schema. Nested enums
#          are written "Message.Enum"; an enum declared inside the *same* message may be written
#          by its short name.
#   default: a Python value (enum defaults by value name, e.g. "MAX").
# ------------------------------------------------------------------------------------------------

_SCALARS = {
    "double": descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE,
    "float": descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT,
    "int64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
    "uint64": descriptor_pb2.FieldDescriptorProto.TYPE_UINT64,
    "int32": descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
    "uint32": descriptor_pb2.FieldDescriptorProto.TYPE_UINT32,
    "bool": descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
    "string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
    "bytes": descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
}

_ENGINE = [("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)]

#: Enums declared at file level: name -> [(value name, number), ...].
_TOP_ENUMS: dict[str, list[tuple[str, int]]] = {
    "Phase": [("TRAIN", 0), ("TEST", 1)],
}

#: Messages: name -> (fields, nested enums).
_MESSAGES: dict[str, tuple[list[tuple], dict[str, list[tuple[str, int]]]]] = {
    # --- blobs ---------------------------------------------------------------------------------
    "BlobShape": ([("p", "int64", "dim", 1)], {}),
    "BlobProto": ([
        ("o", "BlobShape", "shape", 7),
        ("p", "float", "data", 5),
        ("p", "float", "diff", 6),
        ("p", "double", "double_data", 8),
        ("p", "double", "double_diff", 9),
        ("o", "int32", "num", 1, 0),       # legacy 4-D dimensions
        ("o", "int32", "channels", 2, 0),
        ("o", "int32", "height", 3, 0),
        ("o", "int32", "width", 4, 0),
    ], {}),
    "BlobProtoVector": ([("r", "BlobProto", "blobs", 1)], {}),
    "FillerParameter": ([
        ("o", "string", "type", 1, "constant"),
        ("o", "float", "value", 2, 0.0),
        ("o", "float", "min", 3, 0.0),
        ("o", "float", "max", 4, 1.0),
        ("o", "float", "mean", 5, 0.0),
        ("o", "float", "std", 6, 1.0),
        ("o", "int32", "sparse", 7, -1),
        ("o", "VarianceNorm", "variance_norm", 8, "FAN_IN"),
    ], {"VarianceNorm": [("FAN_IN", 0), ("FAN_OUT", 1), ("AVERAGE", 2)]}),
    # --- nets ----------------------------------------------------------------------------------
    "NetParameter": ([
        ("o", "string", "name", 1),
        ("r", "string", "input", 3),          # legacy net inputs (upgraded to an Input layer)
        ("r", "BlobShape", "input_shape", 8),
        ("r", "int32", "input_dim", 4),
        ("o", "bool", "force_backward", 5, False),
        ("o", "NetState", "state", 6),
        ("o", "bool", "debug_info", 7, False),
        ("r", "LayerParameter", "layer", 100),
        ("r", "V1LayerParameter", "layers", 2),  # legacy V1 layers
    ], {}),
    "NetState": ([
        ("o", "Phase", "phase", 1, "TEST"),
        ("o", "int32", "level", 2, 0),
        ("r", "string", "stage", 3),
    ], {}),
    "NetStateRule": ([
        ("o", "Phase", "phase", 1),
        ("o", "int32", "min_level", 2),
        ("o", "int32", "max_level", 3),
        ("r", "string", "stage", 4),
        ("r", "string", "not_stage", 5),
    ], {}),
    "ParamSpec": ([
        ("o", "string", "name", 1),
        ("o", "DimCheckMode", "share_mode", 2),
        ("o", "float", "lr_mult", 3, 1.0),
        ("o", "float", "decay_mult", 4, 1.0),
    ], {"DimCheckMode": [("STRICT", 0), ("PERMISSIVE", 1)]}),
    "LayerParameter": ([
        ("o", "string", "name", 1),
        ("o", "string", "type", 2),
        ("r", "string", "bottom", 3),
        ("r", "string", "top", 4),
        ("o", "Phase", "phase", 10),
        ("r", "float", "loss_weight", 5),
        ("r", "ParamSpec", "param", 6),
        ("r", "BlobProto", "blobs", 7),
        ("r", "bool", "propagate_down", 11),
        ("r", "NetStateRule", "include", 8),
        ("r", "NetStateRule", "exclude", 9),
        ("o", "TransformationParameter", "transform_param", 100),
        ("o", "LossParameter", "loss_param", 101),
        ("o", "AccuracyParameter", "accuracy_param", 102),
        ("o", "ArgMaxParameter", "argmax_param", 103),
        ("o", "BatchNormParameter", "batch_norm_param", 139),
        ("o", "BiasParameter", "bias_param", 141),
        ("o", "ConcatParameter", "concat_param", 104),
        ("o", "ContrastiveLossParameter", "contrastive_loss_param", 105),
        ("o", "ConvolutionParameter", "convolution_param", 106),
        ("o", "CropParameter", "crop_param", 144),
        ("o", "DataParameter", "data_param", 107),
        ("o", "DropoutParameter", "dropout_param", 108),
        ("o", "DummyDataParameter", "dummy_data_param", 109),
        ("o", "EltwiseParameter", "eltwise_param", 110),
        ("o", "ELUParameter", "elu_param", 140),
        ("o", "EmbedParameter", "embed_param", 137),
        ("o", "ExpParameter", "exp_param", 111),
        ("o", "FlattenParameter", "flatten_param", 135),
        ("o", "HDF5DataParameter", "hdf5_data_param", 112),
        ("o", "HDF5OutputParameter", "hdf5_output_param", 113),
        ("o", "HingeLossParameter", "hinge_loss_param", 114),
        ("o", "ImageDataParameter", "image_data_param", 115),
        ("o", "InfogainLossParameter", "infogain_loss_param", 116),
        ("o", "InnerProductParameter", "inner_product_param", 117),
        ("o", "InputParameter", "input_param", 143),
        ("o", "LogParameter", "log_param", 134),
        ("o", "LRNParameter", "lrn_param", 118),
        ("o", "MemoryDataParameter", "memory_data_param", 119),
        ("o", "MVNParameter", "mvn_param", 120),
        ("o", "ParameterParameter", "parameter_param", 145),
        ("o", "PoolingParameter", "pooling_param", 121),
        ("o", "PowerParameter", "power_param", 122),
        ("o", "PReLUParameter", "prelu_param", 131),
        ("o", "PythonParameter", "python_param", 130),
        ("o", "RecurrentParameter", "recurrent_param", 146),
        ("o", "ReductionParameter", "reduction_param", 136),
        ("o", "ReLUParameter", "relu_param", 123),
        ("o", "ReshapeParameter", "reshape_param", 133),
        ("o", "ScaleParameter", "scale_param", 142),
        ("o", "SigmoidParameter", "sigmoid_param", 124),
        ("o", "SoftmaxParameter", "softmax_param", 125),
        ("o", "SPPParameter", "spp_param", 132),
        ("o", "SliceParameter", "slice_param", 126),
        ("o", "SwishParameter", "swish_param", 147),
        ("o", "TanHParameter", "tanh_param", 127),
        ("o", "ThresholdParameter", "threshold_param", 128),
        ("o", "TileParameter", "tile_param", 138),
        ("o", "WindowDataParameter", "window_data_param", 129),
    ], {}),
    "TransformationParameter": ([
        ("o", "float", "scale", 1, 1.0),
        ("o", "bool", "mirror", 2, False),
        ("o", "uint32", "crop_size", 3, 0),
        ("o", "string", "mean_file", 4),
        ("r", "float", "mean_value", 5),
        ("o", "bool", "force_color", 6, False),
        ("o", "bool", "force_gray", 7, False),
    ], {}),
    "LossParameter": ([
        ("o", "int32", "ignore_label", 1),
        ("o", "NormalizationMode", "normalization", 3, "VALID"),
        ("o", "bool", "normalize", 2),
    ], {"NormalizationMode": [("FULL", 0), ("VALID", 1), ("BATCH_SIZE", 2), ("NONE", 3)]}),
    # --- layer-specific parameters, alphabetical ------------------------------------------------
    "AccuracyParameter": ([
        ("o", "uint32", "top_k", 1, 1),
        ("o", "int32", "axis", 2, 1),
        ("o", "int32", "ignore_label", 3),
    ], {}),
    "ArgMaxParameter": ([
        ("o", "bool", "out_max_val", 1, False),
        ("o", "uint32", "top_k", 2, 1),
        ("o", "int32", "axis", 3),
    ], {}),
    "BatchNormParameter": ([
        ("o", "bool", "use_global_stats", 1),
        ("o", "float", "moving_average_fraction", 2, 0.999),
        ("o", "float", "eps", 3, 1e-5),
    ], {}),
    "BiasParameter": ([
        ("o", "int32", "axis", 1, 1),
        ("o", "int32", "num_axes", 2, 1),
        ("o", "FillerParameter", "filler", 3),
    ], {}),
    "ConcatParameter": ([
        ("o", "int32", "axis", 2, 1),
        ("o", "uint32", "concat_dim", 1, 1),
    ], {}),
    "ContrastiveLossParameter": ([
        ("o", "float", "margin", 1, 1.0),
        ("o", "bool", "legacy_version", 2, False),
    ], {}),
    "ConvolutionParameter": ([
        ("o", "uint32", "num_output", 1),
        ("o", "bool", "bias_term", 2, True),
        ("r", "uint32", "pad", 3),
        ("r", "uint32", "kernel_size", 4),
        ("r", "uint32", "stride", 6),
        ("r", "uint32", "dilation", 18),
        ("o", "uint32", "pad_h", 9, 0),
        ("o", "uint32", "pad_w", 10, 0),
        ("o", "uint32", "kernel_h", 11),
        ("o", "uint32", "kernel_w", 12),
        ("o", "uint32", "stride_h", 13),
        ("o", "uint32", "stride_w", 14),
        ("o", "uint32", "group", 5, 1),
        ("o", "FillerParameter", "weight_filler", 7),
        ("o", "FillerParameter", "bias_filler", 8),
        ("o", "Engine", "engine", 15, "DEFAULT"),
        ("o", "int32", "axis", 16, 1),
        ("o", "bool", "force_nd_im2col", 17, False),
    ], {"Engine": _ENGINE}),
    "CropParameter": ([
        ("o", "int32", "axis", 1, 2),
        ("r", "uint32", "offset", 2),
    ], {}),
    "DataParameter": ([
        ("o", "string", "source", 1),
        ("o", "uint32", "batch_size", 4),
        ("o", "uint32", "rand_skip", 7, 0),
        ("o", "DB", "backend", 8, "LEVELDB"),
        ("o", "float", "scale", 2, 1.0),         # legacy: moved to transform_param on upgrade
        ("o", "string", "mean_file", 3),
        ("o", "uint32", "crop_size", 5, 0),
        ("o", "bool", "mirror", 6, False),
        ("o", "bool", "force_encoded_color", 9, False),
        ("o", "uint32", "prefetch", 10, 4),
    ], {"DB": [("LEVELDB", 0), ("LMDB", 1)]}),
    "DropoutParameter": ([("o", "float", "dropout_ratio", 1, 0.5)], {}),
    "DummyDataParameter": ([
        ("r", "FillerParameter", "data_filler", 1),
        ("r", "BlobShape", "shape", 6),
        ("r", "uint32", "num", 2),
        ("r", "uint32", "channels", 3),
        ("r", "uint32", "height", 4),
        ("r", "uint32", "width", 5),
    ], {}),
    "EltwiseParameter": ([
        ("o", "EltwiseOp", "operation", 1, "SUM"),
        ("r", "float", "coeff", 2),
        ("o", "bool", "stable_prod_grad", 3, True),
    ], {"EltwiseOp": [("PROD", 0), ("SUM", 1), ("MAX", 2)]}),
    "ELUParameter": ([("o", "float", "alpha", 1, 1.0)], {}),
    "EmbedParameter": ([
        ("o", "uint32", "num_output", 1),
        ("o", "uint32", "input_dim", 2),
        ("o", "bool", "bias_term", 3, True),
        ("o", "FillerParameter", "weight_filler", 4),
        ("o", "FillerParameter", "bias_filler", 5),
    ], {}),
    "ExpParameter": ([
        ("o", "float", "base", 1, -1.0),
        ("o", "float", "scale", 2, 1.0),
        ("o", "float", "shift", 3, 0.0),
    ], {}),
    "FlattenParameter": ([
        ("o", "int32", "axis", 1, 1),
        ("o", "int32", "end_axis", 2, -1),
    ], {}),
    "HDF5DataParameter": ([
        ("o", "string", "source", 1),
        ("o", "uint32", "batch_size", 2),
        ("o", "bool", "shuffle", 3, False),
    ], {}),
    "HDF5OutputParameter": ([("o", "string", "file_name", 1)], {}),
    "HingeLossParameter": ([("o", "Norm", "norm", 1, "L1")], {"Norm": [("L1", 1), ("L2", 2)]}),
    "ImageDataParameter": ([
        ("o", "string", "source", 1),
        ("o", "uint32", "batch_size", 4, 1),
        ("o", "uint32", "rand_skip", 7, 0),
        ("o", "bool", "shuffle", 8, False),
        ("o", "uint32", "new_height", 9, 0),
        ("o", "uint32", "new_width", 10, 0),
        ("o", "bool", "is_color", 11, True),
        ("o", "float", "scale", 2, 1.0),
        ("o", "string", "mean_file", 3),
        ("o", "uint32", "crop_size", 5, 0),
        ("o", "bool", "mirror", 6, False),
        ("o", "string", "root_folder", 12, ""),
    ], {}),
    "InfogainLossParameter": ([
        ("o", "string", "source", 1),
        ("o", "int32", "axis", 2, 1),
    ], {}),
    "InnerProductParameter": ([
        ("o", "uint32", "num_output", 1),
        ("o", "bool", "bias_term", 2, True),
        ("o", "FillerParameter", "weight_filler", 3),
        ("o", "FillerParameter", "bias_filler", 4),
        ("o", "int32", "axis", 5, 1),
        ("o", "bool", "transpose", 6, False),
    ], {}),
    "InputParameter": ([("r", "BlobShape", "shape", 1)], {}),
    "LogParameter": ([
        ("o", "float", "base", 1, -1.0),
        ("o", "float", "scale", 2, 1.0),
        ("o", "float", "shift", 3, 0.0),
    ], {}),
    "LRNParameter": ([
        ("o", "uint32", "local_size", 1, 5),
        ("o", "float", "alpha", 2, 1.0),
        ("o", "float", "beta", 3, 0.75),
        ("o", "NormRegion", "norm_region", 4, "ACROSS_CHANNELS"),
        ("o", "float", "k", 5, 1.0),
        ("o", "Engine", "engine", 6, "DEFAULT"),
    ], {"NormRegion": [("ACROSS_CHANNELS", 0), ("WITHIN_CHANNEL", 1)], "Engine": _ENGINE}),
    "MemoryDataParameter": ([
        ("o", "uint32", "batch_size", 1),
        ("o", "uint32", "channels", 2),
        ("o", "uint32", "height", 3),
        ("o", "uint32", "width", 4),
    ], {}),
    "MVNParameter": ([
        ("o", "bool", "normalize_variance", 1, True),
        ("o", "bool", "across_channels", 2, False),
        ("o", "float", "eps", 3, 1e-9),
    ], {}),
    "ParameterParameter": ([("o", "BlobShape", "shape", 1)], {}),
    "PoolingParameter": ([
        ("o", "PoolMethod", "pool", 1, "MAX"),
        ("o", "uint32", "pad", 4, 0),
        ("o", "uint32", "pad_h", 9, 0),
        ("o", "uint32", "pad_w", 10, 0),
        ("o", "uint32", "kernel_size", 2),
        ("o", "uint32", "kernel_h", 5),
        ("o", "uint32", "kernel_w", 6),
        ("o", "uint32", "stride", 3, 1),
        ("o", "uint32", "stride_h", 7),
        ("o", "uint32", "stride_w", 8),
        ("o", "Engine", "engine", 11, "DEFAULT"),
        ("o", "bool", "global_pooling", 12, False),
        ("o", "RoundMode", "round_mode", 13, "CEIL"),
    ], {"PoolMethod": [("MAX", 0), ("AVE", 1), ("STOCHASTIC", 2)], "Engine": _ENGINE,
        "RoundMode": [("CEIL", 0), ("FLOOR", 1)]}),
    "PowerParameter": ([
        ("o", "float", "power", 1, 1.0),
        ("o", "float", "scale", 2, 1.0),
        ("o", "float", "shift", 3, 0.0),
    ], {}),
    "PReLUParameter": ([
        ("o", "FillerParameter", "filler", 1),
        ("o", "bool", "channel_shared", 2, False),
    ], {}),
    "PythonParameter": ([
        ("o", "string", "module", 1),
        ("o", "string", "layer", 2),
        ("o", "string", "param_str", 3, ""),
        ("o", "bool", "share_in_parallel", 4, False),
    ], {}),
    "RecurrentParameter": ([
        ("o", "uint32", "num_output", 1, 0),
        ("o", "FillerParameter", "weight_filler", 2),
        ("o", "FillerParameter", "bias_filler", 3),
        ("o", "bool", "debug_info", 4, False),
        ("o", "bool", "expose_hidden", 5, False),
    ], {}),
    "ReductionParameter": ([
        ("o", "ReductionOp", "operation", 1, "SUM"),
        ("o", "int32", "axis", 2, 0),
        ("o", "float", "coeff", 3, 1.0),
    ], {"ReductionOp": [("SUM", 1), ("ASUM", 2), ("SUMSQ", 3), ("MEAN", 4)]}),
    "ReLUParameter": ([
        ("o", "float", "negative_slope", 1, 0.0),
        ("o", "Engine", "engine", 2, "DEFAULT"),
    ], {"Engine": _ENGINE}),
    "ReshapeParameter": ([
        ("o", "BlobShape", "shape", 1),
        ("o", "int32", "axis", 2, 0),
        ("o", "int32", "num_axes", 3, -1),
    ], {}),
    "ScaleParameter": ([
        ("o", "int32", "axis", 1, 1),
        ("o", "int32", "num_axes", 2, 1),
        ("o", "FillerParameter", "filler", 3),
        ("o", "bool", "bias_term", 4, False),
        ("o", "FillerParameter", "bias_filler", 5),
    ], {}),
    "SigmoidParameter": ([("o", "Engine", "engine", 1, "DEFAULT")], {"Engine": _ENGINE}),
    "SoftmaxParameter": ([
        ("o", "Engine", "engine", 1, "DEFAULT"),
        ("o", "int32", "axis", 2, 1),
    ], {"Engine": _ENGINE}),
    "SPPParameter": ([
        ("o", "uint32", "pyramid_height", 1),
        ("o", "PoolMethod", "pool", 2, "MAX"),
        ("o", "Engine", "engine", 6, "DEFAULT"),
    ], {"PoolMethod": [("MAX", 0), ("AVE", 1), ("STOCHASTIC", 2)], "Engine": _ENGINE}),
    "SliceParameter": ([
        ("o", "int32", "axis", 3, 1),
        ("r", "uint32", "slice_point", 2),
        ("o", "uint32", "slice_dim", 1, 1),
    ], {}),
    "SwishParameter": ([("o", "float", "beta", 1, 1.0)], {}),
    "TanHParameter": ([("o", "Engine", "engine", 1, "DEFAULT")], {"Engine": _ENGINE}),
    "ThresholdParameter": ([("o", "float", "threshold", 1, 0.0)], {}),
    "TileParameter": ([
        ("o", "int32", "axis", 1, 1),
        ("o", "int32", "tiles", 2),
    ], {}),
    "WindowDataParameter": ([
        ("o", "string", "source", 1),
        ("o", "float", "scale", 2, 1.0),
        ("o", "string", "mean_file", 3),
        ("o", "uint32", "batch_size", 4),
        ("o", "uint32", "crop_size", 5, 0),
        ("o", "bool", "mirror", 6, False),
        ("o", "float", "fg_threshold", 7, 0.5),
        ("o", "float", "bg_threshold", 8, 0.5),
        ("o", "float", "fg_fraction", 9, 0.25),
        ("o", "uint32", "context_pad", 10, 0),
        ("o", "string", "crop_mode", 11, "warp"),
        ("o", "bool", "cache_images", 12, False),
        ("o", "string", "root_folder", 13, ""),
    ], {}),
    # --- the legacy (V1) layer: an enum type and its own field numbers --------------------------
    "V1LayerParameter": ([
        ("r", "string", "bottom", 2),
        ("r", "string", "top", 3),
        ("o", "string", "name", 4),
        ("r", "NetStateRule", "include", 32),
        ("r", "NetStateRule", "exclude", 33),
        ("o", "LayerType", "type", 5),
        ("r", "BlobProto", "blobs", 6),
        ("r", "string", "param", 1001),
        ("r", "DimCheckMode", "blob_share_mode", 1002),
        ("r", "float", "blobs_lr", 7),
        ("r", "float", "weight_decay", 8),
        ("r", "float", "loss_weight", 35),
        ("o", "AccuracyParameter", "accuracy_param", 27),
        ("o", "ArgMaxParameter", "argmax_param", 23),
        ("o", "ConcatParameter", "concat_param", 9),
        ("o", "ContrastiveLossParameter", "contrastive_loss_param", 40),
        ("o", "ConvolutionParameter", "convolution_param", 10),
        ("o", "DataParameter", "data_param", 11),
        ("o", "DropoutParameter", "dropout_param", 12),
        ("o", "DummyDataParameter", "dummy_data_param", 26),
        ("o", "EltwiseParameter", "eltwise_param", 24),
        ("o", "ExpParameter", "exp_param", 41),
        ("o", "HDF5DataParameter", "hdf5_data_param", 13),
        ("o", "HDF5OutputParameter", "hdf5_output_param", 14),
        ("o", "HingeLossParameter", "hinge_loss_param", 29),
        ("o", "ImageDataParameter", "image_data_param", 15),
        ("o", "InfogainLossParameter", "infogain_loss_param", 16),
        ("o", "InnerProductParameter", "inner_product_param", 17),
        ("o", "LRNParameter", "lrn_param", 18),
        ("o", "MemoryDataParameter", "memory_data_param", 22),
        ("o", "MVNParameter", "mvn_param", 34),
        ("o", "PoolingParameter", "pooling_param", 19),
        ("o", "PowerParameter", "power_param", 21),
        ("o", "ReLUParameter", "relu_param", 30),
        ("o", "SigmoidParameter", "sigmoid_param", 38),
        ("o", "SoftmaxParameter", "softmax_param", 39),
        ("o", "SliceParameter", "slice_param", 31),
        ("o", "TanHParameter", "tanh_param", 37),
        ("o", "ThresholdParameter", "threshold_param", 25),
        ("o", "WindowDataParameter", "window_data_param", 20),
        ("o", "TransformationParameter", "transform_param", 36),
        ("o", "LossParameter", "loss_param", 42),
    ], {
        "LayerType": [
            ("NONE", 0), ("ABSVAL", 35), ("ACCURACY", 1), ("ARGMAX", 30), ("BNLL", 2), ("CONCAT", 3),
            ("CONTRASTIVE_LOSS", 37), ("CONVOLUTION", 4), ("DATA", 5), ("DECONVOLUTION", 39),
            ("DROPOUT", 6), ("DUMMY_DATA", 32), ("EUCLIDEAN_LOSS", 7), ("ELTWISE", 25), ("EXP", 38),
            ("FLATTEN", 8), ("HDF5_DATA", 9), ("HDF5_OUTPUT", 10), ("HINGE_LOSS", 28), ("IM2COL", 11),
            ("IMAGE_DATA", 12), ("INFOGAIN_LOSS", 13), ("INNER_PRODUCT", 14), ("LRN", 15),
            ("MEMORY_DATA", 29), ("MULTINOMIAL_LOGISTIC_LOSS", 16), ("MVN", 34), ("POOLING", 17),
            ("POWER", 26), ("RELU", 18), ("SIGMOID", 19), ("SIGMOID_CROSS_ENTROPY_LOSS", 27),
            ("SILENCE", 36), ("SOFTMAX", 20), ("SOFTMAX_LOSS", 21), ("SPLIT", 22), ("SLICE", 33),
            ("TANH", 23), ("WINDOW_DATA", 24), ("THRESHOLD", 31),
        ],
        "DimCheckMode": [("STRICT", 0), ("PERMISSIVE", 1)],
    }),
    # --- solvers -------------------------------------------------------------------------------
    "SolverParameter": ([
        ("o", "string", "net", 24),
        ("o", "NetParameter", "net_param", 25),
        ("o", "string", "train_net", 1),
        ("r", "string", "test_net", 2),
        ("o", "NetParameter", "train_net_param", 21),
        ("r", "NetParameter", "test_net_param", 22),
        ("o", "NetState", "train_state", 26),
        ("r", "NetState", "test_state", 27),
        ("r", "int32", "test_iter", 3),
        ("o", "int32", "test_interval", 4, 0),
        ("o", "bool", "test_compute_loss", 19, False),
        ("o", "bool", "test_initialization", 32, True),
        ("o", "float", "base_lr", 5),
        ("o", "int32", "display", 6),
        ("o", "int32", "average_loss", 33, 1),
        ("o", "int32", "max_iter", 7),
        ("o", "int32", "iter_size", 36, 1),
        ("o", "string", "lr_policy", 8),
        ("o", "float", "gamma", 9),
        ("o", "float", "power", 10),
        ("o", "float", "momentum", 11),
        ("o", "float", "weight_decay", 12),
        ("o", "string", "regularization_type", 29, "L2"),
        ("o", "int32", "stepsize", 13),
        ("r", "int32", "stepvalue", 34),
        ("o", "float", "clip_gradients", 35, -1.0),
        ("o", "int32", "snapshot", 14, 0),
        ("o", "string", "snapshot_prefix", 15),
        ("o", "bool", "snapshot_diff", 16, False),
        ("o", "SnapshotFormat", "snapshot_format", 37, "BINARYPROTO"),
        ("o", "SolverMode", "solver_mode", 17, "GPU"),
        ("o", "int32", "device_id", 18, 0),
        ("o", "int64", "random_seed", 20, -1),
        ("o", "string", "type", 40, "SGD"),
        ("o", "float", "delta", 31, 1e-8),
        ("o", "float", "momentum2", 39, 0.999),
        ("o", "float", "rms_decay", 38, 0.99),
        ("o", "bool", "debug_info", 23, False),
        ("o", "bool", "snapshot_after_train", 28, True),
        ("o", "SolverType", "solver_type", 30, "SGD"),   # legacy enum, upgraded to `type`
        ("o", "bool", "layer_wise_reduce", 41, True),
        ("r", "string", "weights", 42),
    ], {
        "SnapshotFormat": [("HDF5", 0), ("BINARYPROTO", 1)],
        "SolverMode": [("CPU", 0), ("GPU", 1)],
        "SolverType": [("SGD", 0), ("NESTEROV", 1), ("ADAGRAD", 2), ("RMSPROP", 3), ("ADADELTA", 4),
                       ("ADAM", 5)],
    }),
    "SolverState": ([
        ("o", "int32", "iter", 1),
        ("o", "string", "learned_net", 2),
        ("r", "BlobProto", "history", 3),
        ("o", "int32", "current_step", 4, 0),
    ], {}),
}

#: Caffe's upgrade table from the V1 ``LayerType`` enum to the V2 type strings (``""`` for NONE).
V1_LAYER_TYPE_NAMES: dict[int, str] = {
    0: "", 35: "AbsVal", 1: "Accuracy", 30: "ArgMax", 2: "BNLL", 3: "Concat", 37: "ContrastiveLoss",
    4: "Convolution", 39: "Deconvolution", 5: "Data", 6: "Dropout", 32: "DummyData", 7: "EuclideanLoss",
    25: "Eltwise", 38: "Exp", 8: "Flatten", 9: "HDF5Data", 10: "HDF5Output", 28: "HingeLoss",
    11: "Im2col", 12: "ImageData", 13: "InfogainLoss", 14: "InnerProduct", 15: "LRN", 29: "MemoryData",
    16: "MultinomialLogisticLoss", 34: "MVN", 17: "Pooling", 26: "Power", 18: "ReLU", 19: "Sigmoid",
    27: "SigmoidCrossEntropyLoss", 36: "Silence", 20: "Softmax", 21: "SoftmaxWithLoss", 22: "Split",
    33: "Slice", 23: "TanH", 24: "WindowData", 31: "Threshold",
}


# ------------------------------------------------------------------------------------------------
# Table -> FileDescriptorProto -> descriptor pool -> message classes
# ------------------------------------------------------------------------------------------------

_LABELS = {
    "o": descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    "r": descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
    "p": descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
}


def _enum_full_names() -> set[str]:
    names = set(_TOP_ENUMS)
    for message, (_, enums) in _MESSAGES.items():
        names.update(f"{message}.{enum}" for enum in enums)
    return names


def _default_text(value: object) -> str:
    """``FieldDescriptorProto.default_value`` is text: ``true``/``false``, numbers, enum names."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _add_enum(target, name: str, values: list[tuple[str, int]]) -> None:
    enum = target.add(name=name)
    for value_name, number in values:
        enum.value.add(name=value_name, number=number)


def _build_file() -> descriptor_pb2.FileDescriptorProto:
    enum_names = _enum_full_names()
    file = descriptor_pb2.FileDescriptorProto(name=_FILE_NAME, package=PACKAGE, syntax="proto2")
    for name, values in _TOP_ENUMS.items():
        _add_enum(file.enum_type, name, values)
    for message_name, (fields, enums) in _MESSAGES.items():
        message = file.message_type.add(name=message_name)
        for enum_name, values in enums.items():
            _add_enum(message.enum_type, enum_name, values)
        for spec in fields:
            label, type_name, field_name, number = spec[:4]
            field = message.field.add(name=field_name, number=number, label=_LABELS[label])
            if type_name in _SCALARS:
                field.type = _SCALARS[type_name]
            else:
                if type_name in enums:  # an enum of this very message, by short name
                    type_name = f"{message_name}.{type_name}"
                if type_name in enum_names:
                    field.type = descriptor_pb2.FieldDescriptorProto.TYPE_ENUM
                elif type_name in _MESSAGES:
                    field.type = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
                else:  # pragma: no cover - a typo in the table
                    raise RuntimeError(f"caffe schema: unknown type {type_name!r} for {message_name}.{field_name}")
                field.type_name = f".{PACKAGE}.{type_name}"
            if len(spec) > 4:
                field.default_value = _default_text(spec[4])
            if label == "p":
                field.options.packed = True
    return file


#: The private descriptor pool holding the schema (full names ``caffe.NetParameter`` etc.).
POOL = descriptor_pool.DescriptorPool()
POOL.Add(_build_file())


def message_class(name: str):
    """The protobuf message class for the Caffe message ``name`` (e.g. ``"LayerParameter"``)."""
    if name not in _MESSAGES:
        raise KeyError(f"the Caffe schema has no message {name!r}")
    return message_factory.GetMessageClass(POOL.FindMessageTypeByName(f"{PACKAGE}.{name}"))


def message_names() -> list[str]:
    """All message names of the schema, in table order."""
    return list(_MESSAGES)


# One module-level class per message: proto.NetParameter, proto.LayerParameter, ...
for _name in _MESSAGES:
    globals()[_name] = message_class(_name)
    __all__.append(_name)
del _name

# The top-level Phase enum values.
TRAIN = 0
TEST = 1

# Names for static analysis and readers (the loop above binds them; these annotations document them).
NetParameter = globals()["NetParameter"]
LayerParameter = globals()["LayerParameter"]
V1LayerParameter = globals()["V1LayerParameter"]
BlobProto = globals()["BlobProto"]
BlobShape = globals()["BlobShape"]
BlobProtoVector = globals()["BlobProtoVector"]
ParamSpec = globals()["ParamSpec"]
NetState = globals()["NetState"]
NetStateRule = globals()["NetStateRule"]
FillerParameter = globals()["FillerParameter"]
SolverParameter = globals()["SolverParameter"]
SolverState = globals()["SolverState"]
