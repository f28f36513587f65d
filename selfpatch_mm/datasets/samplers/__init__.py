# Copyright (c) selfpatch_mm contributors. All rights reserved.
from .resumable_sampler import ResumableSampler
from .sample_seeded_pipeline import SampleSeededPipeline, sample_seed

__all__ = ['ResumableSampler', 'SampleSeededPipeline', 'sample_seed']
