"""Diagnostics as Lightning callbacks, one per file, each chosen through ``diagnostics=``.

- ``GradientFlow`` (``gradflow``): gradient norm of every layer's weights -> gradflow.csv/.png
- ``ActivationStats`` (``activations``): mean, std, saturated and dead units -> activations.csv/.png
- ``FeatureMaps`` (``features``): first-layer filters and feature maps of conv nets -> PNG grids
- ``AttentionMaps`` (``attention``): attention of a transformer on a few test inputs -> PNG
- ``ReferentAttention`` (``referent_attention``, in ``experiment=attention_it``): attention from
  "it" to its referent over the test split of ``coreference`` -> attention_summary.json, PNG

None of them costs anything on steps it does not measure: hooks are attached only for the
measured step and removed right after.
"""

from depthbench.diagnostics.activations import ActivationStats
from depthbench.diagnostics.attention import AttentionMaps
from depthbench.diagnostics.features import FeatureMaps
from depthbench.diagnostics.gradflow import GradientFlow
from depthbench.diagnostics.referent_attention import ReferentAttention

__all__ = [
    "ActivationStats",
    "AttentionMaps",
    "FeatureMaps",
    "GradientFlow",
    "ReferentAttention",
]
