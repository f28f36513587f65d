# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Transcriptions of the official code (facebookresearch/dino,
alinlab/SelfPatch), kept as references: the parity tests compare the
package with them, and the benchmarks time them as the official baseline.
Nothing here is part of the installed package or used for training."""
