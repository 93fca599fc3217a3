"""How the network runs fast: device and precision, rewrites of the network, the truncated network.

``device``: ``Execution`` (device, autocast dtype, channels_last, compile) and the host-side
helpers; ``rewrites``: BatchNorm folding and fp32 strided depthwise convolutions, restored on
exit; ``network``: the truncated network a render calls every step.
"""
from __future__ import annotations

from .device import (SYSTEM_MALLOC_ENV, Execution, ValueReader, cpu_has_native_bf16, cudnn_autotune, pick_device,
                     resolve_channels_last, resolve_precision, to_device, tune_host_allocator)
from .network import Network, truncated_module
from .rewrites import folded_batchnorm, fp32_strided_depthwise, kept_memory_format, rewritten, strided_depthwise_convs

__all__ = ["SYSTEM_MALLOC_ENV", "Execution", "Network", "ValueReader", "cpu_has_native_bf16", "cudnn_autotune",
           "folded_batchnorm", "fp32_strided_depthwise", "kept_memory_format", "pick_device", "resolve_channels_last", "resolve_precision",
           "rewritten", "strided_depthwise_convs", "to_device", "truncated_module", "tune_host_allocator"]
