# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Evaluation of pretrained features without fine-tuning: DAVIS-2017 label
propagation and its J&F metrics, weighted k-NN classification and patch
feature pictures."""
from .davis_metrics import (boundary_f_measure, boundary_map, db_statistics,
                            evaluate_davis, evaluate_sequence,
                            format_davis_table, read_label, region_similarity,
                            summarize_davis, write_davis_csv)
from .davis_propagation import (build_frame_loader, iter_frames,
                                read_sequences, segment_davis,
                                segment_sequence)
from .image_loader import build_image_loader, iter_images, list_images
from .knn import (KNN_PIPELINE, build_knn_dataloader, extract_features,
                  knn_classify, knn_classify_multi, knn_pipeline)
from .label_propagation import (davis_frame_size, list_frames,
                                neighbourhood_mask, normalize_label_maps,
                                propagate_labels, read_palette, segment_video,
                                write_indexed_png)
from .patch_visualization import (draw_positives, pca_rgb, resize_to_patches,
                                  visualize_patches)
from .pretrained import PretrainedSelfPatch, load_pretrained_selfpatch

__all__ = [
    'boundary_f_measure', 'boundary_map', 'evaluate_davis',
    'evaluate_sequence', 'format_davis_table', 'read_label',
    'region_similarity', 'summarize_davis', 'db_statistics',
    'write_davis_csv', 'build_frame_loader', 'iter_frames', 'read_sequences',
    'segment_davis', 'segment_sequence', 'KNN_PIPELINE',
    'build_knn_dataloader', 'build_image_loader', 'iter_images', 'list_images',
    'extract_features', 'knn_classify', 'knn_classify_multi', 'knn_pipeline',
    'davis_frame_size', 'list_frames',
    'neighbourhood_mask', 'normalize_label_maps', 'propagate_labels',
    'read_palette', 'segment_video', 'write_indexed_png', 'draw_positives',
    'pca_rgb', 'resize_to_patches', 'visualize_patches', 'PretrainedSelfPatch',
    'load_pretrained_selfpatch'
]
